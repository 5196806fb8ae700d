import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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
