"""utils/stats.py and report.py's statistics section against answers computed independently (hand cases, scipy)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

import report
from utils import stats


def test_holm_hand_case():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (monotone), 0.5; returned in the input's order
    adjusted = stats.holm([0.03, 0.5, 0.01, 0.02])
    assert adjusted == pytest.approx([0.06, 0.5, 0.04, 0.06])


def test_holm_caps_at_one_and_skips_nan():
    adjusted = stats.holm([0.4, np.nan, 0.3])
    assert adjusted[0] == pytest.approx(0.6) and adjusted[2] == pytest.approx(0.6) and math.isnan(adjusted[1])
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_holm_of_eighteen_tests_multiplies_the_smallest_by_eighteen():
    pvalues = [0.026] + [0.5] * 17
    assert stats.holm(pvalues)[0] == pytest.approx(18 * 0.026)


def test_t_interval_matches_scipy():
    changes = np.array([0.02, -0.01, 0.05, 0.00, 0.03])
    mean, low, high = stats.t_interval(changes)
    expected = scipy_stats.ttest_1samp(changes, 0.0).confidence_interval(0.95)
    assert mean == pytest.approx(changes.mean())
    assert (low, high) == pytest.approx((expected.low, expected.high))


def test_interval_and_p_on_one_scale():
    """The paired change's p and its interval agree: p < 0.05 exactly when 0 is outside the interval."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        base = rng.uniform(0.2, 0.3, 5)
        values = base * (1 + rng.normal(rng.uniform(-0.03, 0.03), 0.02, 5))
        change = stats.paired_change(values, base)
        assert (change.p < 0.05) == (change.low > 0 or change.high < 0)
        assert change.p == pytest.approx(scipy_stats.ttest_1samp(values / base - 1, 0.0).pvalue)


def test_relative_changes_drop_zero_references():
    assert stats.relative_changes([0.2, 0.1, 0.3], [0.1, 0.0, 0.3]) == pytest.approx([1.0, 0.0])
    with pytest.raises(ValueError):
        stats.relative_changes([1, 2], [1])


def test_no_variance_gives_p_zero_or_one():
    assert stats.one_sample_p([0.0, 0.0, 0.0]) == 1.0
    assert stats.one_sample_p([0.1, 0.1]) == 0.0
    assert math.isnan(stats.one_sample_p([0.1]))


def test_minimum_detectable_effect_has_power_point_eight():
    sd, n = 0.02, 5
    mde = stats.min_detectable_effect(sd, n)
    df, crit = n - 1, scipy_stats.t.ppf(0.975, n - 1)
    nc = mde / sd * math.sqrt(n)  # power computed here by the noncentral t's survival function, independently
    power = scipy_stats.nct.sf(crit, df, nc) + scipy_stats.nct.cdf(-crit, df, nc)
    assert power == pytest.approx(0.8, abs=1e-6)


def test_minimum_detectable_effect_known_values():
    # standardised effects (dz) of a paired t-test, alpha 0.05 two-sided, power 0.8: about 1.68 at n = 5 and 1.0 at
    # n = 10 (G*Power's matched-pairs table); above the normal approximation (1.96 + 0.84) / sqrt(n)
    assert stats.min_detectable_effect(1.0, 5) == pytest.approx(1.68, abs=0.02)
    assert stats.min_detectable_effect(1.0, 10) == pytest.approx(1.0, abs=0.02)
    assert stats.min_detectable_effect(1.0, 10) > (1.959964 + 0.841621) / math.sqrt(10)
    assert stats.min_detectable_effect(2.0, 10) == pytest.approx(2 * stats.min_detectable_effect(1.0, 10))
    assert math.isnan(stats.min_detectable_effect(0.0, 10)) and math.isnan(stats.min_detectable_effect(1.0, 1))


def _runs(table):
    """A runs frame as report.load_runs shapes it, from {(model, variant): [ndcg per seed]}."""
    rows = []
    for (model, variant), values in table.items():
        for seed, value in enumerate(values, start=1):
            metrics = {"ndcg@10": value}
            rows.append({"model": model, "variant": variant, "seed": str(seed), "metrics": metrics,
                         "protocols": {"full": metrics}, "protocol": "full"})
    return pd.DataFrame(rows)


def test_report_statistics_direct_contrasts_and_holm_families():
    runs = _runs({("M", "baseline"): [0.20, 0.21, 0.22, 0.20], ("M", "llmkt"): [0.21, 0.22, 0.22, 0.21],
                  ("M", "shuffled"): [0.19, 0.20, 0.21, 0.20], ("M", "leaky"): [0.20, 0.22, 0.23, 0.21]})
    frame = report.paired_statistics({"full": runs}, "ndcg@10").set_index(["variant", "reference"])
    assert set(frame.index) == {("leaky", "baseline"), ("llmkt", "baseline"), ("shuffled", "baseline"),
                                ("llmkt", "shuffled"), ("leaky", "llmkt")}
    direct = frame.loc[("llmkt", "shuffled")]
    changes = np.array([0.21, 0.22, 0.22, 0.21]) / np.array([0.19, 0.20, 0.21, 0.20]) - 1
    assert direct["mean"] == pytest.approx(changes.mean())
    assert direct["p"] == pytest.approx(scipy_stats.ttest_1samp(changes, 0.0).pvalue)
    against = frame[frame["family"] == "baseline"]
    assert list(against["holm"]) == pytest.approx(list(stats.holm(against["p"].to_numpy())))
    assert frame[frame["family"] == "direct"]["holm"].to_numpy() == pytest.approx(
        stats.holm(frame[frame["family"] == "direct"]["p"].to_numpy()))


def test_the_sparse_update_is_tested_directly_against_the_dense_one_with_distillation():
    """Issue 22's equivalence study: sparse_llmkt is compared with llmkt (not only with the baseline)."""
    runs = _runs({("M", "baseline"): [0.20, 0.21, 0.22], ("M", "llmkt"): [0.21, 0.22, 0.22],
                  ("M", "sparse_baseline"): [0.20, 0.20, 0.22], ("M", "sparse_llmkt"): [0.21, 0.21, 0.23]})
    frame = report.paired_statistics({"full": runs}, "ndcg@10").set_index(["variant", "reference"])
    assert frame.loc[("sparse_llmkt", "llmkt"), "family"] == "direct"
    assert frame.loc[("sparse_baseline", "baseline"), "family"] == "baseline"


def test_report_reads_a_committed_runs_table(tmp_path):
    """A study's committed runs.csv is re-analysed without its journal (docs/results/audit/runs.csv)."""
    path = tmp_path / "runs.csv"
    path.write_text("experiment,model,variant,seed,part,ndcg@10,uni100:ndcg@10\n"
                    "a_s1.yaml,M,baseline,1,1,0.2,0.4\na_s2.yaml,M,baseline,2,1,0.3,0.5\n"
                    "b_s1.yaml,M,llmkt,1,1,0.22,0.41\nb_s2.yaml,M,llmkt,2,1,0.3,0.52\n")
    assert report.is_runs_table(path)
    runs = report.load_runs_table(path)
    assert set(runs["variant"]) == {"baseline", "llmkt"}
    assert runs.iloc[2]["protocols"] == {"main": {"ndcg@10": 0.22}, "uni100": {"ndcg@10": 0.41}}
    assert report.main([str(path), "--out", str(tmp_path / "out"), "--curves", "none"]) == 0
    text = (tmp_path / "out" / "report.md").read_text()
    assert "## Statistics" in text and "llmkt vs baseline" in text and "Holm" in text


def test_cold_users_become_a_protocol_of_their_own(tmp_path):
    """The cold users' mean per-user metric (from the history) is tested like any protocol and kept in runs.csv."""
    history = tmp_path / "h.json"
    history.write_text(json.dumps({"parts": {"1": {"test_per_user": {
        "user": ["1", "2", "3", "4"], "ndcg@10": [0.1, 0.3, 0.5, 0.7], "cold": [True, True, False, False]}}}}))
    runs = pd.DataFrame([{"model": "M [cold users k=2]", "variant": "baseline", "seed": "1", "part": 1,
                          "metrics": {"ndcg@10": 0.4}, "protocols": {"full": {"ndcg@10": 0.4}}, "protocol": "full",
                          "history": str(history), "cold": ("users", 2), "config": "a.yaml"}])
    out = report.add_cold_user_metrics(runs)
    assert out.iloc[0]["protocols"]["cold_users"] == {"ndcg@10": pytest.approx(0.2)}
    assert out.iloc[0]["protocols"]["full"] == {"ndcg@10": 0.4}
    assert report.runs_table(out).iloc[0]["cold_users:ndcg@10"] == pytest.approx(0.2)


def test_ladder_section_names_the_knowledge_effect_and_the_oracle():
    runs = _runs({("N", "baseline"): [0.20, 0.21, 0.22], ("N", "template"): [0.21, 0.21, 0.23],
                  ("N", "template_remapped"): [0.20, 0.21, 0.22], ("N", "svd_train"): [0.20, 0.20, 0.22],
                  ("N", "oracle_valid"): [0.25, 0.26, 0.27]})
    lines, _ = report.statistics_report({"full": runs}, "ndcg@10")
    text = "\n".join(lines)
    assert "### The ladder" in text
    assert "External knowledge (a - b: real against remapped item texts), N, full:" in text
    assert "Channel capacity (ORACLE" in text and "never the test items" in text
    assert "template vs template_remapped" in text and "oracle_valid vs template" in text
