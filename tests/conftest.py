import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest -n N: N workers share the cores; one torch/BLAS thread each (and in the runs they start) instead of
    # every worker running as many threads as there are cores. A test of thread settings sets its own.
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``long`` (5 s or more) first, each file's in their order: under ``pytest -n 2`` a long test
    picked up last would keep one worker busy after the other has finished."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A temporary working directory (RecBole writes log/ and saved/ relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


_BUILT = {}


@pytest.fixture(scope="session")
def built():
    """Real (config, data, model) triples, built once per model for the whole session."""
    from helpers import build

    def get(model_name):
        if model_name not in _BUILT:
            _BUILT[model_name] = build(model_name)
        return _BUILT[model_name]

    return get


@pytest.fixture
def api(monkeypatch):
    """A running fake OpenAI-compatible server on 127.0.0.1; no API key and no proxy in the environment."""
    from fake_llm import start_server

    for name in ("OPENAI_API_KEY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    server, fake = start_server()
    yield fake
    server.shutdown()
    server.server_close()
