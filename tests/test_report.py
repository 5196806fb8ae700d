"""report.py on a real (shrunk) benchmark folder: mean ± std over seeds, paired tests, activity, plots."""

import json
import subprocess
import sys

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from helpers import ROOT, run_generated

import report

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    """NeuMF baseline and LLM-KT, seeds 1 and 2, one epoch per phase, run for real."""
    names = ("neumf_baseline_s1", "neumf_llmkt_s1", "neumf_baseline_s2", "neumf_llmkt_s2")
    return run_generated("benchmark_ml100k/generate.py", names, tmp_path_factory.mktemp("bench"))


def test_generated_benchmark_pairs_variants_on_the_same_split(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "experiments/benchmark_ml100k/generate.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=120)
    import yaml

    base = yaml.safe_load((tmp_path / "neumf_baseline_s3.yaml").read_text())
    llmkt = yaml.safe_load((tmp_path / "neumf_llmkt_s3.yaml").read_text())
    assert base["seed"] == llmkt["seed"] == 3 and base["eval_args"] == llmkt["eval_args"]
    epochs = [[s["set_config"]["epochs"] for s in x["scenario"] if "set_config" in s] for x in (base, llmkt)]
    assert epochs[0] == epochs[1]
    assert not any("wrap_model" in s for s in base["scenario"])
    assert any("wrap_model" in s for s in llmkt["scenario"])
    assert len(list(tmp_path.glob("*.yaml"))) == 3 * 2 * 5 + 5  # + the random-vector control of NeuMF


@pytest.mark.long
@pytest.mark.xdist_group("report")  # one worker builds the module fixture once
def test_history_records_both_losses_and_validation_per_epoch(benchmark):
    journal = pd.read_csv(benchmark / "benchmark_journal.csv", index_col=0)
    row = journal[journal["variant"] == "llmkt"].iloc[0]
    history = json.loads((benchmark / row["history_file"]).read_text())
    (epoch,) = history["parts"]["0"]["trains"][0]["epochs"]
    assert epoch["distil_loss"] > 0 and epoch["model_loss"] > 0 and "ndcg@10" in epoch["valid"]
    alpha = float(row["train_0:dist_loss_w"])  # the weight the part trained with, as journaled
    assert alpha == 0.5  # the generated file's weight: a journal of 0 (no distillation) fails here
    trained_on = epoch["loss"] / epoch["batches"]  # RecBole's own epoch loss: the sum of what the Distiller returned
    assert trained_on == pytest.approx((1 - alpha) * epoch["model_loss"] + alpha * epoch["distil_loss"], rel=1e-3)
    assert trained_on != pytest.approx(epoch["model_loss"], rel=1e-3)  # so the model loss alone fails
    (plain,) = history["parts"]["1"]["trains"][0]["epochs"]
    assert plain["distil_loss"] is None
    per_user = history["parts"]["1"]["test_per_user"]
    assert len(per_user["user"]) == len(per_user["ndcg@10"]) == len(per_user["activity"]) > 100
    test = json.loads(row["train_1:best_test_res"])
    assert np.mean(per_user["ndcg@10"]) == pytest.approx(test["ndcg@10"], abs=1e-3)


@pytest.mark.long
@pytest.mark.xdist_group("report")  # one worker builds the module fixture once
def test_report_tables_plots_and_paired_tests(benchmark, tmp_path, capsys):
    assert report.main([str(benchmark), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NeuMF" in out and "baseline" in out and "llmkt" in out and "Q1" in out
    text = (tmp_path / "report.md").read_text()
    assert "| model | variant | n | ndcg@10 | hit@10 | recall@10 |" in text and ", p=" in text
    for name in ("bars.png", "activity.png", "curves_NeuMF_baseline_s1.png", "curves_NeuMF_llmkt_s1.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 200 and image.shape[1] > 400 and image.std() > 0

    runs = report.load_runs(report.find_journals(benchmark))
    summary = report.summarize(runs, ["ndcg@10"]).set_index("variant")
    values = {v: [m["ndcg@10"] for m in runs[runs["variant"] == v].sort_values("seed")["metrics"]]
              for v in ("baseline", "llmkt")}
    assert summary.loc["baseline", "mean"] == pytest.approx(np.mean(values["baseline"]))
    assert summary.loc["llmkt", "std"] == pytest.approx(np.std(values["llmkt"], ddof=1))
    expected = (np.mean(values["llmkt"]) - np.mean(values["baseline"])) / np.mean(values["baseline"])
    assert summary.loc["llmkt", "change"] == pytest.approx(expected)


def test_paired_p_values():
    assert report.paired_p([1.0], [0.5]) is None
    assert report.paired_p([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0
    assert report.paired_p([0.51, 0.62, 0.70, 0.66], [0.50, 0.60, 0.69, 0.64]) < 0.05


def mixed_journal(path, llmkt_metrics):
    """Three seeds of a baseline measuring ndcg@10 and hit@10 and of a variant measuring ``llmkt_metrics``."""
    rows = []
    for seed in (1, 2, 3):
        for variant, names in (("baseline", ("ndcg@10", "hit@10")), ("llmkt", llmkt_metrics)):
            rows.append({"config": f"x/m_{variant}_s{seed}.yaml", "model": "NeuMF", "status": "done", "seed": seed,
                         "variant": variant,
                         "train_0:best_test_res": json.dumps({name: 0.3 + seed / 100 for name in names})})
    pd.DataFrame(rows).to_csv(path)
    return path


def test_experiments_with_no_metric_in_common_are_one_line_not_a_table_of_nan(tmp_path, capsys):
    """Issue 24: a variant that measured other metrics was tabled as n = 0, nan beside the baseline."""
    journal = mixed_journal(tmp_path / "j_journal.csv", ("recall@20",))
    assert report.main([str(journal), "--curves", "none", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "share no" in err
    assert "NeuMF/llmkt: recall@20" in err and not (tmp_path / "out" / "report.md").exists()


def test_a_metric_some_experiments_lack_is_left_out_with_a_note(tmp_path, capsys):
    journal = mixed_journal(tmp_path / "j_journal.csv", ("ndcg@10",))
    assert report.main([str(journal), "--curves", "none", "--out", str(tmp_path / "out")]) == 0
    assert "note: hit@10 left out" in capsys.readouterr().err
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| NeuMF | llmkt | 3 |" in text and "hit@10" not in text.split("## ")[0] and "nan" not in text
