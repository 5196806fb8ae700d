"""Folder sweeps: datasets loaded once per process for identical data settings, converted matrices reused when
up to date, and parallel runs on Ray (local, or a head the test starts) journaling what sequential runs do."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import ROOT, build, shrink

import run_exps
import utils.data as data_module

# Under pytest -n (xdist, --dist loadgroup) these run one after the other on one worker: two Ray clusters at once on
# one machine would compete for its ports and cores.
pytestmark = [pytest.mark.e2e, pytest.mark.long, pytest.mark.xdist_group("ray")]


def test_the_groups_of_make_test_hold(request):
    """make test runs pytest -n auto --dist loadgroup: this file's tests must share one worker (its xdist_group),
    which pytest-xdist marks by appending '@ray' to the test's id. A pytest that ignores the rewrite (9.2 with
    xdist 3.8) would let two Ray clusters start at once without a word; this fails instead."""
    if not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only under pytest -n --dist loadgroup")
    assert request.node.nodeid.endswith("@ray"), request.node.nodeid


def test_the_dataset_is_reused_for_identical_data_settings_only(monkeypatch):
    loads = []
    original = data_module._load_dataset
    monkeypatch.setattr(data_module, "_load_dataset", lambda config: loads.append(1) or original(config))
    monkeypatch.setattr(data_module, "_DATASETS", OrderedDict())
    build("NeuMF", seed=1)
    build("NeuMF", seed=2, learning_rate=0.01)  # other seed, other training settings: same data
    assert len(loads) == 1
    build("NeuMF", user_inter_num_interval="[20,50)")  # other filter: loaded again
    build("BPR")  # same data settings as the first: reused across models of a type
    build("SASRec")  # a sequential dataset: loaded again
    assert len(loads) == 3
    assert len(data_module._DATASETS) == data_module.MAX_CACHED_DATASETS == 2  # the least recently used went
    build("NeuMF", user_inter_num_interval="[20,50)")  # that was the filtered one: loaded again
    assert len(loads) == 4


def test_a_reused_dataset_splits_exactly_like_a_fresh_one(monkeypatch):
    monkeypatch.setattr(data_module, "_DATASETS", OrderedDict())
    _, first, _ = build("NeuMF", seed=5)
    _, again, _ = build("NeuMF", seed=5)
    for split in ("train_dataset", "test"):
        a, b = getattr(first, split), getattr(again, split)
        a, b = (x.dataset if hasattr(x, "dataset") else x for x in (a, b))
        assert a.inter_feat["item_id"].tolist() == b.inter_feat["item_id"].tolist()
        assert a.inter_feat["user_id"].tolist() == b.inter_feat["user_id"].tolist()


def folder_of(workdir, seeds):
    """One experiment per seed. Each seed has its own profile folder, as the ready sweeps name their profile files
    per seed: the profiles are written from each seed's split, and experiments running at the same time must not
    overwrite each other's (that race, not the dataset cache, made the parallel run differ now and then)."""
    folder = workdir / "batch"
    folder.mkdir()
    for seed in seeds:
        path = shrink("neumf/neumf_ml100k.yaml", workdir, extra={"seed": seed, "journal_name": "j.csv"})
        raw = yaml.safe_load(path.read_text())
        raw["llm_config"]["embeddings_path"] = str(workdir / "emb" / f"s{seed}")
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        path.rename(folder / f"neumf_s{seed}.yaml")
    return folder


def test_a_converted_matrix_is_reused_only_while_its_source_is_unchanged(workdir, capsys):
    folder = folder_of(workdir, [1])
    path = folder / "neumf_s1.yaml"
    assert run_exps.main([str(path)]) == 0
    assert "is up to date" not in capsys.readouterr().out
    assert run_exps.main([str(path)]) == 0
    assert "user_minilm384_rs.pt is up to date with user_profiles_rs.json" in capsys.readouterr().out
    source = workdir / "emb" / "s1" / "ml-100k" / "user_profiles_rs.json"
    profiles = json.loads(source.read_text())
    profiles[0]["embedding"][0] += 1.0
    source.write_text(json.dumps(profiles))  # same name and split, other content: converted again
    assert run_exps.main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "is up to date" not in out and "user_profiles_rs.json -> user_minilm384_rs.pt" in out


def metrics_of(journal):
    frame = pd.read_csv(journal, index_col=0)
    return {row["config"]: {k: round(v, 3) for k, v in json.loads(row["train_1:best_test_res"]).items()}
            for row in frame.to_dict("records")}


def test_parallel_run_journals_the_same_results_as_a_sequential_one(workdir):
    folder = folder_of(workdir, [1, 2])
    assert run_exps.main([str(folder)]) == 0
    sequential = metrics_of(folder / "j.csv")
    (folder / "j.csv").rename(workdir / "sequential.csv")
    assert run_exps.main([str(folder), "--workers", "2"]) == 0  # a third would queue: make test-cluster has that
    parallel = metrics_of(folder / "j.csv")
    assert parallel == sequential and len(parallel) == 2
    assert len(list((workdir / "log" / "runs").glob("neumf_s*.out"))) == 2


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.mark.cluster  # make test-cluster, with the two-node test: a Ray head of its own costs 20 s of a 2-core machine
def test_a_sweep_runs_on_a_ray_head_started_on_localhost(workdir):
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    # --block keeps the head in this process group, so the test stops its own head and no other Ray on the machine
    head = subprocess.Popen([ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
                             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        assert wait_for_port(port, 120), "the Ray head did not start"
        folder = folder_of(workdir, [1, 2])
        done = subprocess.run([sys.executable, str(ROOT / "run_exps.py"), str(folder), "--workers", "2",
                               "--address", f"127.0.0.1:{port}"], cwd=workdir, capture_output=True, text=True,
                              timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        journal = pd.read_csv(folder / "j.csv", index_col=0)
        assert sorted(journal["config"]) == ["neumf_s1.yaml", "neumf_s2.yaml"]
        assert set(journal["status"]) == {"done"}
    finally:
        head.send_signal(signal.SIGINT)  # 'ray start --block' then stops the processes of its own node
        try:
            head.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(30)
