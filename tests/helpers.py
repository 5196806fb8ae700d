"""Shared helpers: shrink the ready scenarios so that a real run on ml-100k takes seconds."""

import copy
import queue
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"

# Fewer users (the 298 with 20-39 interactions: 8110 of them), one epoch per phase, small models, big batches.
SMALL_DATA = {
    "user_inter_num_interval": "[20,40)",
    "train_batch_size": 4096,
    "eval_batch_size": 40960,
    "show_progress": False,
}
# Context-aware models are evaluated by RecBole's point-wise sampled loader, one user at a time: fewer users again
# (those with 20-30 interactions: 199 instead of 446) keep each of those runs near the others' few seconds.
CONTEXT_DATA = {"user_inter_num_interval": "[20,30)"}
SMALL_MODELS = {
    "NeuMF": {"mf_embedding_size": 16, "mlp_embedding_size": 32, "mlp_hidden_size": [32, 16]},
    "SimpleX": {"embedding_size": 16},
    "MultiVAE": {"mlp_hidden_size": [64], "latent_dimension": 32},
    "NGCF": {"embedding_size": 16, "hidden_size_list": [16, 16]},
    "LightGCN": {"embedding_size": 16, "n_layers": 1},
    "AutoInt": {"embedding_size": 8, "mlp_hidden_size": [32, 32], "n_layers": 1, **CONTEXT_DATA},
    "SASRec": {"hidden_size": 16, "inner_size": 32, "n_layers": 1, "MAX_ITEM_LIST_LENGTH": 20},
    "GRU4Rec": {"embedding_size": 16, "hidden_size": 16, "MAX_ITEM_LIST_LENGTH": 20},
    "BPR": {"embedding_size": 16},
    "DCN": {"embedding_size": 8, "mlp_hidden_size": [32, 32], "cross_layer_num": 2, **CONTEXT_DATA},
    "DeepFM": {"embedding_size": 8, "mlp_hidden_size": [32, 32], **CONTEXT_DATA},
    "WideDeep": {"embedding_size": 8, "mlp_hidden_size": [32, 16], **CONTEXT_DATA},
    "TwoTowers": {"embedding_size": 8, "tower_hidden_size": [32, 16], **CONTEXT_DATA},
    "AutoIntKar": {"embedding_size": 8, "mlp_hidden_size": [32, 32], "n_layers": 1, "kar_hidden_size": 16,
                   **CONTEXT_DATA},
}


def load(path):
    return yaml.safe_load(Path(path).read_text())


def small_experiment(root, scenario, name="exp.yaml", **changes):
    """A small NeuMF experiment ``root/run/<name>`` with ``scenario`` and the settings ``changes``, its embeddings
    folder inside ``run/`` (the hostile tests and benchmarks/hostile_sweep.py build their cases on it)."""
    folder = root / "run"
    folder.mkdir(exist_ok=True)
    path = shrink("neumf/neumf_ml100k.yaml", folder)
    raw = yaml.safe_load(path.read_text())
    raw["llm_config"] = {"embeddings_path": str(folder / "emb")}
    raw["scenario"] = scenario
    raw.update(changes)
    path.unlink()
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def shrink(experiment, workdir, *, short_form=False, width=8, epochs=1, extra=None):
    """Write a shrunk copy of a ready experiment into ``workdir`` and return its path.

    Keeps the scenario's commands and their order; only sizes, epochs and paths change: one epoch per train,
    profiles reduced to ``width`` columns, files under ``workdir``.
    """
    workdir = Path(workdir)
    raw = load(EXPERIMENTS / experiment if not Path(experiment).is_absolute() else experiment)
    raw.update(SMALL_DATA)
    raw.update(SMALL_MODELS.get(raw["model"], {}))
    raw["checkpoint_dir"] = str(workdir / "saved")
    llm = raw.setdefault("llm_config", {})  # a baseline may read no profiles at all
    llm["embeddings_path"] = str(workdir / "emb")
    llm.get("preprocess_random", {}).update({"embedding_size": 24})
    specs = llm.get("build_profiles") or []
    for spec in specs if isinstance(specs, list) else [specs]:  # TF-IDF instead of MiniLM: seconds, not a minute
        spec.update({"encoder": "tfidf", "dim": 24})
    for key in ("kar_user_emb_file", "kar_item_emb_file"):
        if raw.get(key):
            raw[key] = raw[key].replace("datasets/llm_embeddings", str(workdir / "emb"))
    steps = []
    for step in raw["scenario"]:
        step = copy.deepcopy(step)
        name = step["command"] if "command" in step else next(iter(step))
        params = step.get("params") if "command" in step else step[name]
        if name == "set_config" and "epochs" in params:
            params["epochs"] = epochs
        if name == "reduce_dim":
            params["dimension"] = width
            params["file_out"] = f"user{width}.pt"
        if name == "wrap_model" and "users_emb_file" in params:
            params["users_emb_file"] = f"user{width}.pt"
        steps.append({name: params} if short_form else {"command": name, "params": params})
    raw["scenario"] = steps
    raw.update(extra or {})
    path = workdir / Path(experiment).name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_generated(generator, names, root, args=()):
    """Generate a sweep with ``generator`` (a script under experiments/, given ``args``), shrink the experiments
    ``names`` into ``root/folder`` and run that folder for real from ``root``; returns the folder."""
    import os
    import subprocess
    import sys

    import run_exps

    generated = root / "generated"
    subprocess.run([sys.executable, str(EXPERIMENTS / generator), *args, "--out", str(generated)],
                   check=True, capture_output=True, timeout=120)
    folder = root / "folder"
    folder.mkdir()
    for name in names:
        shrink(generated / f"{name}.yaml", folder)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert run_exps.main([str(folder)]) == 0
    finally:
        os.chdir(cwd)
    return folder


def build(model_name, **overrides):
    """(config, data bundle, model) for a real RecBole model on a small slice of ml-100k."""
    from recbole.utils import init_seed

    from utils.config_loading import ExperimentConfig
    from utils.data import build_dataset, prepare_data
    from utils.registry import get_model_class

    settings = {"use_gpu": False, "state": "ERROR", "seed": 7, "reproducibility": True, **SMALL_DATA}
    settings.update(SMALL_MODELS.get(model_name, {}))
    settings["eval_args"] = {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"}
    if model_name in ("SASRec", "GRU4Rec"):
        settings["train_neg_sample_args"] = None
        settings["eval_args"] = {"split": {"LS": "valid_and_test"}, "group_by": "user", "order": "TO", "mode": "full"}
    if model_name == "AutoInt":
        settings["load_col"] = {"inter": ["user_id", "item_id", "rating", "timestamp"],
                                "user": ["user_id", "age", "gender", "occupation"],
                                "item": ["item_id", "release_year", "class"]}
        settings["eval_args"]["mode"] = "uni100"
    settings.update(overrides)
    model_class = get_model_class(model_name)
    config = ExperimentConfig(model=model_class, dataset="ml-100k", config_dict=settings)
    init_seed(config["seed"], True)
    dataset = build_dataset(config)
    data = prepare_data(config, dataset)
    init_seed(config["seed"], True)
    model = model_class(config, data.train_dataset)
    return config, data, model


class Output:
    """Reads a ``Popen``'s text stdout (and stderr, when piped) on threads, so that every read has a timeout:
    ``wait_for`` a line, then ``finish`` (wait for the exit and the rest of the output)."""

    def __init__(self, process):
        self.process = process
        self.lines = queue.Queue()
        self.out, self.err = [], []
        self.threads = [threading.Thread(target=self._read, args=(process.stdout, self.out, True), daemon=True)]
        if process.stderr is not None:
            self.threads.append(threading.Thread(target=self._read, args=(process.stderr, self.err, False),
                                                 daemon=True))
        for thread in self.threads:
            thread.start()

    def _read(self, stream, kept, queued):
        for line in stream:
            kept.append(line)
            if queued:
                self.lines.put(line)
        if queued:
            self.lines.put(None)

    def wait_for(self, predicate, timeout):
        """The first stdout line for which ``predicate`` is true; AssertionError after ``timeout`` s or at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                seen = "".join(self.out)[-2000:]
                raise AssertionError(f"no such line within {timeout} s; output so far: {seen}") from None
            if line is None:
                raise AssertionError(f"the process ended first; its output: {''.join(self.out)[-2000:]}")
            if predicate(line):
                return line

    def finish(self, timeout):
        """Wait for the exit and the end of the output; returns (stdout, stderr)."""
        self.process.wait(timeout=timeout)
        for thread in self.threads:
            thread.join(timeout=timeout)
        return "".join(self.out), "".join(self.err)
