"""tools/compare_journals.py: does a re-run reproduce the journaled numbers to 4 decimals?"""

import json
import subprocess
import sys

import pandas as pd
import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import compare_journals  # noqa: E402


def journal(path, rows):
    """A journal with one done row per {file name: test result} (and one failed row)."""
    records = [{"config": f"experiments/somewhere/{name}", "status": "done",
                "train_0:best_test_res": json.dumps({"ndcg@10": 0.25}), "train_1:best_test_res": json.dumps(result)}
               for name, result in rows.items()]
    records.append({"config": "experiments/somewhere/broken.yaml", "status": "failed", "train_0:best_test_res": "",
                    "train_1:best_test_res": ""})
    pd.DataFrame(records).to_csv(path)
    return path


def test_a_rerun_that_agrees_to_4_decimals_passes_and_one_that_does_not_is_named(tmp_path, capsys):
    first = journal(tmp_path / "a.csv", {"x_s1.yaml": {"ndcg@10": 0.301234, "hit@10": 0.8},
                                         "y_s1.yaml": {"ndcg@10": 0.2, "hit@10": 0.7}, "only_here.yaml": {}})
    same = journal(tmp_path / "b.csv", {"x_s1.yaml": {"ndcg@10": 0.301236, "hit@10": 0.8},
                                        "y_s1.yaml": {"ndcg@10": 0.2, "hit@10": 0.7}})
    assert compare_journals.main([str(first), str(same)]) == 0
    out = capsys.readouterr().out
    assert "same       x_s1.yaml: 3 metrics agree to 4 decimals" in out
    assert "2 of 2 experiments reproduce to 4 decimals" in out
    other = journal(tmp_path / "c.csv", {"x_s1.yaml": {"ndcg@10": 0.3014, "hit@10": 0.8},
                                         "y_s1.yaml": {"ndcg@10": 0.2}})
    assert compare_journals.main([str(first), str(other)]) == 1
    out = capsys.readouterr().out
    assert "DIFFERENT  x_s1.yaml: 1 of 3 metrics" in out and "train_1:ndcg@10: 0.301234 vs 0.3014" in out
    assert "train_1:hit@10: 0.7 vs None" in out and "0 of 2 experiments reproduce" in out


def test_bad_input_is_one_line_from_the_script(tmp_path):
    (tmp_path / "notes.csv").write_text("a,b\n1,2\n")
    for args in ([str(tmp_path / "missing.csv"), str(tmp_path / "notes.csv")],
                 [str(tmp_path / "notes.csv"), str(tmp_path / "notes.csv")]):
        done = subprocess.run([sys.executable, str(ROOT / "tools/compare_journals.py"), *args],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")


def test_a_reports_runs_csv_is_compared_on_the_metrics_it_holds(tmp_path, capsys):
    first = journal(tmp_path / "a.csv", {"x_s1.yaml": {"ndcg@10": 0.301234, "uni100:ndcg@10": 0.5}})
    runs = tmp_path / "runs.csv"
    pd.DataFrame([{"experiment": "x_s1.yaml", "model": "NeuMF", "variant": "llmkt", "seed": 1, "part": 1,
                   "ndcg@10": 0.30124, "uni100:ndcg@10": 0.5}]).to_csv(runs, index=False)
    assert compare_journals.main([str(runs), str(first)]) == 0
    assert "same       x_s1.yaml: 2 metrics agree" in capsys.readouterr().out
    pd.DataFrame([{"experiment": "x_s1.yaml", "model": "NeuMF", "variant": "llmkt", "seed": 1, "part": 1,
                   "ndcg@10": 0.3014, "uni100:ndcg@10": 0.5}]).to_csv(runs, index=False)
    assert compare_journals.main([str(first), str(runs)]) == 1
    assert "train_1:ndcg@10: 0.301234 vs 0.3014" in capsys.readouterr().out


def test_metrics_a_report_derives_are_not_asked_of_a_journal(tmp_path, capsys):
    """runs.csv's cold_users:ndcg@10 comes from the history, not from a journal cell: skipped against a journal."""
    rerun = journal(tmp_path / "b.csv", {"x_s1.yaml": {"ndcg@10": 0.3, "hit@10": 0.8}})
    runs = tmp_path / "runs.csv"
    runs.write_text("experiment,model,variant,seed,part,ndcg@10,hit@10,cold_users:ndcg@10\n"
                    "x_s1.yaml,M,llmkt,1,1,0.3,0.8,0.1\n")
    assert compare_journals.main([str(runs), str(rerun)]) == 0
    assert "2 metrics agree" in capsys.readouterr().out


def raw_journal(path, cell):
    """A journal of one done row whose part-1 results cell is ``cell`` as written (not JSON-encoded here)."""
    pd.DataFrame([{"config": "experiments/somewhere/x_s1.yaml", "status": "done",
                   "train_0:best_test_res": "{'ndcg@10': 0.25}", "train_1:best_test_res": cell}]).to_csv(path)
    return path


@pytest.mark.parametrize("cell,shown", [('{"ndcg@10": NaN}', "nan"), ('{"ndcg@10": Infinity}', "inf"),
                                        ('{"ndcg@10": "n/a"}', "'n/a'"), ("[0.3, 0.8]", "[0.3, 0.8]"),
                                        ("n/a", "'n/a'"), ('{"ndcg@10": true}', "True")])
def test_a_results_cell_that_is_no_finite_metric_is_one_line_naming_it(tmp_path, cell, shown):
    """Hostile journals (issue 24): NaN/inf metrics, 'n/a' cells, JSON lists gave tracebacks or compared as equal."""
    good = journal(tmp_path / "a.csv", {"x_s1.yaml": {"ndcg@10": 0.3}})
    bad = raw_journal(tmp_path / "bad.csv", cell)
    done = subprocess.run([sys.executable, str(ROOT / "tools/compare_journals.py"), str(good), str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "bad.csv" in done.stderr and "train_1:best_test_res" in done.stderr and shown in done.stderr
    assert "Traceback" not in done.stderr


def test_the_original_tools_python_repr_results_are_compared(tmp_path, capsys):
    good = journal(tmp_path / "a.csv", {"x_s1.yaml": {"ndcg@10": 0.3, "hit@10": 0.8}})
    original = raw_journal(tmp_path / "orig.csv", "{'ndcg@10': 0.30001, 'hit@10': 0.8}")
    assert compare_journals.main([str(original), str(good)]) == 0
    assert "same       x_s1.yaml: 3 metrics agree" in capsys.readouterr().out


def test_a_runs_csv_cell_that_is_no_finite_number_is_one_line(tmp_path, capsys):
    runs = tmp_path / "runs.csv"
    runs.write_text("experiment,model,variant,seed,part,ndcg@10\nx_s1.yaml,M,llmkt,1,1,inf\n")
    assert compare_journals.main([str(runs), str(journal(tmp_path / "a.csv", {"x_s1.yaml": {"ndcg@10": 0.3}}))]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs.csv" in err and "ndcg@10 is inf" in err
