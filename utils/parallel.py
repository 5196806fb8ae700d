"""Run a folder's experiments in parallel on Ray: a local cluster, or one that is already running (``--address``).

Each experiment runs in a Ray worker process with its own console log (``log/runs/<file>-<time>.out``) besides
RecBole's ``log/<model>/...``; worker processes are reused, so datasets loaded for one experiment serve the next
with identical data settings. Journal appends take a file lock and replace the file atomically, so concurrent
experiments lose nothing (on a multi-machine cluster the project folder must be shared, at the same path).
GPUs are shared out through Ray's resources: ``gpus_per_experiment`` per task, and RecBole is pointed at the GPUs
Ray assigned.

A lost worker or node (its machine died, was killed, ran out of memory) loses nothing: Ray runs the experiment
once more on a node that is alive (``SYSTEM_RETRIES``), and when that fails too the driver journals it as failed
with Ray's reason. Each experiment carries a ``run_id`` into its row, so an attempt that journaled before its node
died is neither run nor journaled again: every experiment ends in its journal exactly once. The row's ``node``
column says which node ran it (``host/ip/node id``); its log starts with that node's resources.
"""

import os
import socket
import sys
import time
import traceback
import uuid
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

from .paths import PROJECT_ROOT

SYSTEM_RETRIES = 1  # Ray reruns a task whose worker or node died (never one that failed by itself) this often


def journaled(path, run_id):
    """The status in the journal row of ``path`` with this ``run_id``; None when there is none."""
    from utils.experiment import journal_for

    journal = journal_for(path)
    if journal is None or not journal.path.is_file():
        return None
    statuses = [row.get("status") for row in journal.rows() if row.get("run_id") == run_id]
    return statuses[0] if statuses else None


def this_node():
    """``host/ip/node id`` of the Ray node running the caller, and that node's resources."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    resources = next((node["Resources"] for node in ray.nodes() if node["NodeID"] == node_id), {})
    return f"{socket.gethostname()}/{ray.util.get_node_ip_address()}/{node_id}", resources


def run_in_worker(path, cwd, threads, run_id):
    """Run one experiment inside a Ray worker; returns a plain dict (status, seconds, error, kind, log, node)."""
    os.chdir(cwd)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    import ray
    import torch

    from utils.errors import UserError
    from utils.experiment import run_experiment

    torch.set_num_threads(threads)
    gpus = ray.get_gpu_ids()
    # RecBole sets CUDA_VISIBLE_DEVICES from gpu_id itself: give it the GPUs Ray assigned, and none when Ray
    # assigned none (--gpus-per-experiment 0), so that experiments do not all land on GPU 0 unaccounted
    overrides = {"gpu_id": ",".join(str(int(g)) for g in gpus), "use_gpu": bool(gpus)}
    log = Path(cwd) / "log" / "runs" / f"{Path(path).stem}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.out"
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    node, resources = this_node()
    outcome = {"file": path, "log": str(log), "error": None, "kind": None, "node": node}
    earlier = journaled(path, run_id)
    if earlier:  # a retry after the node died between journaling and returning: that row stands
        return {**outcome, "status": earlier, "seconds": 0.0, "log": "-"}
    with open(log, "w", buffering=1) as out, redirect_stdout(out), redirect_stderr(out):
        print(f"node: {node} resources: {resources}")
        try:
            status, _ = run_experiment(path, overrides=overrides, journal_values={"node": node, "run_id": run_id})
            outcome["status"] = status
        except UserError as exc:
            print(f"error: {exc.line()}", file=out)
            outcome.update(status="failed", error=exc.line(), kind="user")
        except Exception as exc:  # a bug: keep the traceback in the experiment's log, report it to the driver
            traceback.print_exc(file=out)
            outcome.update(status="failed", error=f"internal error: {type(exc).__name__}: {exc}", kind="bug",
                           traceback=traceback.format_exc())
    outcome["seconds"] = time.time() - started
    return outcome


def start_ray(workers, address, cpus_per_experiment):
    """Join ``address``, or start a local Ray instance sized for ``workers`` experiments at a time."""
    import ray

    runtime_env = {"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                            os.environ.get("PYTHONPATH")])),
                                "OMP_NUM_THREADS": str(cpus_per_experiment)}}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    else:
        # address="local": always a new instance of our own, never a cluster someone else started on this machine
        ray.init(address="local", num_cpus=workers * cpus_per_experiment, include_dashboard=False,
                 log_to_driver=False, runtime_env=runtime_env)
    return ray


def journal_lost(path, run_id, error):
    """Journal an experiment that Ray could not finish as failed, unless an attempt journaled it before dying."""
    from utils.experiment import file_hash, journal_for, subdir_of
    from utils.journal import JournalRecord

    journal = journal_for(path)
    if journal is None or journaled(path, run_id):
        return
    record = JournalRecord(path, subdir_of(path))
    record.set("config_hash", file_hash(path))
    record.set("run_id", run_id)
    record.finish("failed", error)
    journal.append(record.row())


def lost_outcome(path, run_id, exc):
    """The outcome of an experiment whose worker or node died (retries included); journaled as failed."""
    lines = str(exc).strip().splitlines() or [""]
    error = f"Ray could not finish it (its worker or node died): {type(exc).__name__}: {lines[0]}"
    journal_lost(path, run_id, error)
    return {"file": str(path), "status": "failed", "seconds": 0.0, "log": "-", "kind": "bug", "error": error,
            "node": None}


def run_parallel(files, workers, address=None, cpus_per_experiment=1, gpus_per_experiment=0, fail_fast=False):
    """Run ``files`` on Ray, at most ``workers`` at a time; yields each outcome dict as it finishes."""
    from tqdm import tqdm

    ray = start_ray(workers, address, cpus_per_experiment)
    try:
        task = ray.remote(num_cpus=cpus_per_experiment, num_gpus=gpus_per_experiment,
                          max_retries=SYSTEM_RETRIES, retry_exceptions=False)(run_in_worker)
        cwd = os.getcwd()
        queue = list(files)
        pending = {}
        progress = tqdm(total=len(files), desc="experiments", unit="exp", file=sys.stdout)
        while queue or pending:
            while queue and len(pending) < workers:
                path, run_id = queue.pop(0), uuid.uuid4().hex
                pending[task.remote(str(path), cwd, cpus_per_experiment, run_id)] = (path, run_id)
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                path, run_id = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker or node died, and so did the retry
                    outcome = lost_outcome(path, run_id, exc)
                progress.update(1)
                progress.write(f"{outcome['status']:>8}  {outcome['seconds']:7.1f}s  {outcome['file']}  "
                               f"on {outcome['node']}  (log: {outcome['log']})")
                yield outcome
                if fail_fast and outcome["status"] == "failed":
                    for ref_left in pending:
                        ray.cancel(ref_left, force=True)
                    pending.clear()
                    queue.clear()
        progress.close()
    finally:
        ray.shutdown()
