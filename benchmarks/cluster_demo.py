"""A sweep on a two-node Ray cluster started on this machine, with the worker node killed in the middle.

    .venv/bin/python benchmarks/cluster_demo.py [--experiments 4]

Starts a Ray head and a worker node, each with one CPU and a resource of its own (``node_head``, ``node_worker``),
with Ray's own ``ray.cluster_utils.Cluster``; writes a folder of tiny one-epoch NeuMF experiments on ml-100k
(distilled from random profiles, so no encoder runs); then

1. runs two of them with ``run_exps.py --workers 2 --address <head>``: one lands on each node (each has room for
   one), and the journal's ``node`` column says which;
2. runs the others, and kills the worker node (no graceful stop) as soon as an experiment has started there:
   Ray runs that experiment again on the head, and the journal ends with every experiment exactly once.

Prints where each experiment ran, what was killed and the journal; exits non-zero when anything is missing.
``tests/test_cluster.py`` runs the same steps. Every wait here has a timeout.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

WAIT_S = 240  # the longest any single wait here may take (a node starting, a sweep finishing)


def experiment(seed, workdir):
    """A tiny distillation run: 1 epoch, large batches, a small NeuMF, random 8-wide profiles."""
    return {
        "logger_level": "WARNING", "journal_name": "journal.csv", "dataset": "ml-100k", "seed": seed,
        "show_progress": False, "use_gpu": False, "model": "NeuMF", "epochs": 1, "train_batch_size": 4096,
        "eval_batch_size": 100000, "user_inter_num_interval": "[20,60)",
        "mf_embedding_size": 8, "mlp_embedding_size": 8, "mlp_hidden_size": [16, 8],
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "uni100"},
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10",
        "checkpoint_dir": str(workdir / "saved"),
        "llm_config": {"embeddings_path": str(workdir / "emb"),
                       "preprocess_random": {"random": True, "embedding_size": 8,
                                             "random_users_emb_file": f"random_users_{seed}.pt"}},
        "scenario": [
            {"init_model": None},
            {"wrap_model": {"distil_loss": "NeumfUserRMSE", "users_emb_file": f"random_users_{seed}.pt",
                            "particular": True}},
            {"set_outputs": [9]},
            {"init_trainer": None},
            {"train": None},
            {"test_eval": None},
        ],
    }


def write_sweep(folder, seeds, workdir):
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (folder / f"tiny_s{seed}.yaml").write_text(yaml.safe_dump(experiment(seed, workdir), sort_keys=False))
    return folder


def start_cluster():
    """A head and a worker node on this machine, one CPU each; returns (cluster, head node, worker node)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray.cluster_utils import Cluster

    # The worker node gets an address of its own (loopback), as a second machine would: a driver joins the raylet
    # at its own address, and with one address for both nodes Ray 2.6 may pick the worker's, which the kill ends
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "resources": {"node_head": 1}, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1, resources={"node_worker": 1}, node_ip_address="127.0.0.2")
    cluster.wait_for_nodes(timeout=WAIT_S)
    return cluster, cluster.head_node, worker


def start_sweep(folder, address, workdir):
    """``run_exps.py FOLDER --workers 2 --address ADDRESS`` in the background, output to a file."""
    out = open(workdir / f"{folder.name}.out", "w")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(ROOT / "run_exps.py"), str(folder), "--workers", "2",
                             "--address", address], cwd=workdir, stdout=out, stderr=subprocess.STDOUT, env=env)


def finish(process, workdir, name):
    """Wait for a sweep (at most WAIT_S); its exit status and output."""
    try:
        code = process.wait(WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait(30)
    return code, (workdir / f"{name}.out").read_text()


def first_lines(workdir):
    """(experiment file, first line) of every run log: 'node: HOST/NODE_ID resources: {...}'."""
    for log in sorted((workdir / "log" / "runs").glob("*.out")):
        with open(log, errors="replace") as text:
            yield log.name.split("-", 1)[0] + ".yaml", text.readline()


def started_on(workdir, resource):
    """The experiment files whose run log says they started on the node that has this resource."""
    return [file for file, line in first_lines(workdir) if f"'{resource}'" in line]


def node_names(workdir):
    """Node id -> 'head' or 'worker', read from the run logs (each names its node's id and resources)."""
    names = {}
    for _, line in first_lines(workdir):
        if line.startswith("node: "):
            node = line.split()[1].rsplit("/", 1)[-1]
            names[node] = "worker" if "'node_worker'" in line else "head"
    return names


def kill_when_started(cluster, worker, workdir, process, folder):
    """Kill the worker node (no graceful stop) once an experiment of the running sweep has started on it."""
    deadline = time.time() + WAIT_S
    sweep = {path.name for path in folder.glob("*.yaml")}
    while time.time() < deadline and process.poll() is None:
        victims = sorted(set(started_on(workdir, "node_worker")) & sweep)
        if victims:
            cluster.remove_node(worker, allow_graceful=False)
            return victims
        time.sleep(0.2)
    return []


def journal(folder):
    frame = pd.read_csv(folder / "journal.csv", index_col=0)
    return frame[["config", "status", "node", "error"]]


def run_demo(workdir, experiments=4):
    """Both phases; returns a dict with the journals, the node ids, what was killed and the sweeps' exit codes."""
    cluster, _, worker = start_cluster()
    try:
        both = write_sweep(workdir / "both_nodes", [1, 2], workdir)
        code_both, out_both = finish(start_sweep(both, cluster.address, workdir), workdir, "both_nodes")
        killed = write_sweep(workdir / "node_killed", range(3, 3 + max(2, experiments - 2)), workdir)
        sweep = start_sweep(killed, cluster.address, workdir)
        victims = kill_when_started(cluster, worker, workdir, sweep, killed)
        code_killed, out_killed = finish(sweep, workdir, "node_killed")
    finally:
        cluster.shutdown()
    names = node_names(workdir)
    return {"names": names, "victims": victims,
            "both": journal(both), "killed": journal(killed), "codes": (code_both, code_killed),
            "outputs": (out_both, out_killed)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=int, default=4, help="experiments in all, at least 4")
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        result = run_demo(Path(tmp), args.experiments)
    names = result["names"]
    for phase in ("both", "killed"):
        frame = result[phase].copy()
        frame["node"] = [names.get(str(node).rsplit("/", 1)[-1], node) for node in frame["node"]]
        print(f"\n== journal of the sweep '{phase}'\n{frame.to_string()}")
    print(f"\nworker node killed while running: {result['victims']}; exit codes {result['codes']}; "
          f"{time.time() - started:.0f} s in all")
    complete = all(frame["config"].is_unique and set(frame["status"]) == {"done"}
                   for frame in (result["both"], result["killed"]))
    return 0 if complete and result["victims"] else 1


if __name__ == "__main__":
    sys.exit(main())
