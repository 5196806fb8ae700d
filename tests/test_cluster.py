"""A sweep on a two-node Ray cluster (a head and a worker node on this machine, Ray's own ``Cluster``): experiments
land on both nodes, and a worker node killed mid-sweep loses nothing (``make test-cluster``)."""

import pandas as pd
import pytest
import yaml

from benchmarks.cluster_demo import experiment, run_demo
from utils.parallel import journaled, lost_outcome


@pytest.mark.cluster
def test_a_sweep_uses_both_nodes_and_survives_losing_the_worker_node(workdir):
    result = run_demo(workdir, experiments=4)
    assert result["codes"] == (0, 0), "\n".join(output[-3000:] for output in result["outputs"])
    names = result["names"]
    both, killed = result["both"], result["killed"]
    assert sorted(both["config"]) == ["tiny_s1.yaml", "tiny_s2.yaml"]
    assert sorted(names[node.rsplit("/", 1)[-1]] for node in both["node"]) == ["head", "worker"]
    assert result["victims"], "no experiment had started on the worker node before the sweep ended"
    assert sorted(killed["config"]) == ["tiny_s3.yaml", "tiny_s4.yaml"]  # each exactly once
    assert set(killed["status"]) == {"done"}
    for victim in result["victims"]:  # run again on the node that is left
        node = killed.loc[killed["config"] == victim, "node"].item()
        assert names[node.rsplit("/", 1)[-1]] == "head"


def test_an_experiment_ray_could_not_finish_is_journaled_once_as_failed(workdir):
    path = workdir / "tiny.yaml"
    path.write_text(yaml.safe_dump(experiment(1, workdir)))
    outcome = lost_outcome(path, "run-1", RuntimeError("the node running it died"))
    lost_outcome(path, "run-1", RuntimeError("the node running it died"))  # the same run, reported twice
    journal = pd.read_csv(workdir / "journal.csv", index_col=0)
    assert journal[["config", "status", "run_id"]].values.tolist() == [["tiny.yaml", "failed", "run-1"]]
    assert "the node running it died" in journal["error"].item() and outcome["status"] == "failed"
    assert journaled(path, "run-1") == "failed" and journaled(path, "run-2") is None
