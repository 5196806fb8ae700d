"""tools/compare_effects.py: a variant's effect against its baseline in each study, and whether a factor (the
study) changes it, paired by seed, with Holm's correction within each family."""

import sys

import numpy as np
import pandas as pd
import pytest
from helpers import ROOT

sys.path.insert(0, str(ROOT / "tools"))
import compare_effects  # noqa: E402

from utils.stats import holm, one_sample_p, t_interval  # noqa: E402


def runs_csv(path, values):
    """A report's runs.csv: {(model, variant): [ndcg@10 of seeds 1..n]} (uni100 at half the value)."""
    rows = []
    for (model, variant), series in values.items():
        for seed, value in enumerate(series, start=1):
            rows.append({"experiment": f"{model.lower()}_s{seed}_{variant}.yaml", "model": model, "variant": variant,
                         "seed": seed, "part": 1, "ndcg@10": value, "hit@10": 0.5, "uni100:ndcg@10": value / 2})
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


BASE = [0.20, 0.22, 0.21, 0.19]
SHORT = [0.22, 0.23, 0.23, 0.20]  # the variant helps under the short budget
LONG = [0.20, 0.22, 0.21, 0.19]  # and not at all under the long one


@pytest.fixture
def studies(tmp_path):
    short = runs_csv(tmp_path / "short.csv", {("NeuMF", "baseline"): BASE, ("NeuMF", "llmkt"): SHORT})
    long = runs_csv(tmp_path / "long.csv", {("NeuMF", "baseline"): BASE, ("NeuMF", "llmkt"): LONG,
                                            ("NeuMF", "leaky"): LONG})
    return short, long


def test_effects_and_the_factor_are_per_seed_changes_and_their_paired_differences(studies):
    short, long = studies
    values = {"short": compare_effects.study_values(short, "ndcg@10"),
              "long": compare_effects.study_values(long, "ndcg@10")}
    assert set(values["short"]) == {"full", "uni100"}
    effect, factor = compare_effects.effects(values, ["llmkt"])
    changes = np.array(SHORT) / np.array(BASE) - 1
    row = effect[(effect.protocol == "full") & (effect.study == "short")].iloc[0]
    mean, low, high = t_interval(changes)
    assert (row.n, row["mean"], row.low, row.high) == (4, pytest.approx(mean), pytest.approx(low), pytest.approx(high))
    assert row.p == pytest.approx(one_sample_p(changes))
    # under the long budget the variant equals the baseline on every seed: no change, p = 1
    flat = effect[(effect.protocol == "full") & (effect.study == "long")].iloc[0]
    assert flat["mean"] == 0 and flat.p == 1.0
    # the factor: the same seeds' changes, short minus long (here the long changes are 0)
    difference = factor[factor.protocol == "full"].iloc[0]
    assert difference.comparison == "short - long" and difference["mean"] == pytest.approx(changes.mean())
    assert difference.p == pytest.approx(one_sample_p(changes))
    # Holm within each family, over every row of that family (both protocols)
    assert list(effect["holm"]) == pytest.approx(list(holm(effect["p"].to_numpy())), nan_ok=True)
    assert len(effect) == 4 and len(factor) == 2


def test_the_command_prints_and_writes_both_tables(studies, tmp_path, capsys):
    short, long = studies
    out = tmp_path / "factor.md"
    assert compare_effects.main([f"short={short}", f"long={long}", "--variants", "llmkt", "--out", str(out)]) == 0
    text = out.read_text()
    assert "## The effect in each study" in text and "## The factor" in text
    assert "| full | NeuMF | llmkt | short - long | 4 |" in text and " pp" in text
    assert capsys.readouterr().out.startswith("# Does the factor change the effect?")


@pytest.mark.parametrize("argv, says", [
    (["nolabel"], "is not LABEL=PATH"),
    (["a=/nonexistent/runs.csv", "b=/nonexistent/x.csv"], "does not exist"),
    (["--variants", "nosuch"], "no variant of nosuch ran"),
    (["same"], "each label once"),
])
def test_bad_input_is_one_line_naming_it(studies, argv, says, capsys):
    short, long = studies
    if argv == ["--variants", "nosuch"]:
        argv = [f"a={short}", f"b={long}", *argv]
    elif argv == ["same"]:
        argv = [f"a={short}", f"a={long}"]
    assert compare_effects.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and "\n" not in err and "Traceback" not in err


def test_out_may_not_overwrite_an_input(studies, capsys):
    short, long = studies
    assert compare_effects.main([f"a={short}", f"b={long}", "--out", short]) == 2
    assert "is one of the inputs" in capsys.readouterr().err
