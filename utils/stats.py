"""Statistics for paired comparisons over seeds: intervals and tests on one scale, Holm's correction, and the
minimum detectable effect.

A seed fixes the split, the profiles and the initialisation, so two variants run on the same seed are a pair. The
quantity tested is the per-seed relative change ``a_s / b_s - 1``; its mean, its 95 % t-interval and the
two-sided one-sample t-test of "mean = 0" are all on that scale, so an interval that excludes 0 and p < 0.05 always
agree.
"""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedChange:
    """The per-seed relative change of a variant against a reference, summarised.

    Attributes:
        n: seeds both ran (pairs).
        mean: mean per-seed relative change.
        low: lower end of the 95 % t-interval of the mean (nan with fewer than 2 pairs).
        high: upper end.
        p: two-sided one-sample t-test of mean 0 (nan with fewer than 2 pairs; 1.0 or 0.0 without variance).
        sd: sample standard deviation of the per-seed changes.
        mde: the smallest mean relative change a paired t-test at this n and sd detects with power 0.8 at
            alpha 0.05 (two-sided); nan with fewer than 2 pairs or no variance.
    """

    n: int
    mean: float
    low: float
    high: float
    p: float
    sd: float
    mde: float


def relative_changes(values, reference):
    """Per-pair ``value / reference - 1`` (pairs whose reference is 0 are dropped: no ratio)."""
    values, reference = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    if values.shape != reference.shape:
        raise ValueError(f"paired values need equal lengths, got {values.shape} and {reference.shape}")
    keep = reference != 0
    return values[keep] / reference[keep] - 1


def t_interval(changes, level=0.95):
    """(mean, low, high) of the t-interval of the mean of ``changes``."""
    from scipy import stats

    changes = np.asarray(changes, dtype=float)
    n = len(changes)
    mean = float(changes.mean()) if n else math.nan
    if n < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * changes.std(ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


def one_sample_p(changes):
    """Two-sided p of the one-sample t-test of mean 0; without variance 1.0 for all zeros, else 0.0."""
    from scipy import stats

    changes = np.asarray(changes, dtype=float)
    if len(changes) < 2:
        return math.nan
    if np.allclose(changes, changes[0]):
        return 1.0 if changes[0] == 0 else 0.0
    return float(stats.ttest_1samp(changes, 0.0).pvalue)


def power_paired(effect, sd, n, alpha=0.05):
    """Power of the two-sided paired (one-sample) t-test at level ``alpha`` for a true mean ``effect``, with
    per-pair standard deviation ``sd`` and ``n`` pairs (noncentral t)."""
    from scipy import stats

    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    noncentrality = effect / sd * math.sqrt(n)
    with np.errstate(divide="ignore"):  # boost's noncentral t at df 1 and a large noncentrality: a 0 tail, no error
        return float(stats.nct.sf(crit, df, noncentrality) + stats.nct.cdf(-crit, df, noncentrality))


def min_detectable_effect(sd, n, alpha=0.05, power=0.8):
    """The smallest true mean difference (in ``sd``'s units) that a two-sided paired t-test with ``n`` pairs detects
    with the given power; nan with fewer than 2 pairs or sd 0."""
    from scipy.optimize import brentq

    if n < 2 or not sd > 0:
        return math.nan
    high = sd
    while power_paired(high, sd, n, alpha) < power:
        high *= 2
    return float(brentq(lambda d: power_paired(d, sd, n, alpha) - power, 0.0, high, xtol=1e-10 * sd))


def paired_change(values, reference, level=0.95):
    """:class:`PairedChange` of ``values`` against ``reference`` (matched by position: one pair per seed)."""
    changes = relative_changes(values, reference)
    mean, low, high = t_interval(changes, level)
    sd = float(changes.std(ddof=1)) if len(changes) > 1 else math.nan
    return PairedChange(n=len(changes), mean=mean, low=low, high=high, p=one_sample_p(changes), sd=sd,
                        mde=min_detectable_effect(sd, len(changes)) if len(changes) > 1 else math.nan)


def holm(pvalues):
    """Holm's step-down adjusted p-values, in the input's order (nan stays nan and is not counted).

    The i-th smallest of m p-values becomes max over j <= i of min(1, (m - j + 1) * p_(j))."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = len(finite)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out
