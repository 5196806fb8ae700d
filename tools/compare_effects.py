"""Does a factor change an effect? Compare each variant's effect against its baseline across studies that differ in
one factor (issue 25's budget arm: the same variants trained under three budgets).

    python tools/compare_effects.py orig=docs/results/budget/orig/runs.csv \
        fixed10=docs/results/budget/fixed10/runs.csv converged=docs/results/audit/runs.csv \
        --variants llmkt shuffled --out docs/results/budget/factor.md

Each ``LABEL=PATH`` is one study: a report's runs.csv, a journal, or a folder of journals (report.py reads them).
For every protocol (full ranking, uni100, ...), model and variant it gives

- the **effect** in each study: the per-seed relative change of the variant against that study's baseline
  (utils.stats.paired_change: mean, 95 % t-interval, t-test p, detectable effect);
- the **factor**: for each pair of studies, the per-seed difference of those effects (change under A minus change
  under B, in percentage points), paired by seed (a seed fixes the split and the profiles in every study), with its
  95 % t-interval, t-test p and detectable difference.

Holm's correction runs within each family (effects; factor differences) over every row of the output. Prints the
tables and writes them as markdown with ``--out``.
"""

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.errors import UserError  # noqa: E402


def parse_study(text):
    """``LABEL=PATH`` -> (label, path); one line naming the argument when it is not that."""
    label, sep, path = text.partition("=")
    if not sep or not label.strip() or not path.strip():
        raise UserError(f"study {text!r} is not LABEL=PATH", "e.g. orig=docs/results/budget/orig/runs.csv")
    if not Path(path).exists():
        raise UserError(f"study {label}: {path} does not exist", "give a runs.csv, a journal or a folder of journals")
    return label.strip(), path.strip()


def study_values(path, metric):
    """{protocol: {model: {variant: {seed: value}}}} of one study's finished runs (report.py's readers)."""
    import report

    path = Path(path)
    if path.is_file() and report.is_runs_table(path):
        runs = report.load_runs_table(path)
    else:
        runs = report.load_runs(report.find_journals(path) if path.is_dir() else [path])
    out = {}
    for protocol, chosen in report.by_protocol(runs).items():
        name = "full" if protocol in ("main", report.MAIN_PROTOCOL) else protocol
        for run in chosen.itertuples():
            value = run.metrics.get(metric)
            if value is not None and not pd.isna(value):
                out.setdefault(name, {}).setdefault(run.model, {}).setdefault(run.variant, {})[str(run.seed)] = \
                    float(value)
    return out


def seed_changes(values, variant):
    """{seed: variant / baseline - 1} over the seeds both ran (a zero baseline gives no ratio)."""
    base, mine = values.get("baseline", {}), values.get(variant, {})
    return {s: mine[s] / base[s] - 1 for s in sorted(set(base) & set(mine), key=str) if base[s] != 0}


def summary(changes):
    """utils.stats' summary of a list of per-seed numbers (changes, or differences of changes)."""
    from utils.stats import min_detectable_effect, one_sample_p, t_interval

    changes = np.asarray(changes, dtype=float)
    mean, low, high = t_interval(changes)
    sd = float(changes.std(ddof=1)) if len(changes) > 1 else math.nan
    return {"n": len(changes), "mean": mean, "low": low, "high": high, "p": one_sample_p(changes),
            "mde": min_detectable_effect(sd, len(changes)) if len(changes) > 1 else math.nan}


def effects(studies, variants):
    """(effect rows, factor rows), each with a ``holm`` column adjusted within its own family.

    Args:
        studies: {label: {protocol: {model: {variant: {seed: value}}}}}, labels in the order given.
        variants: the variants compared with their baseline."""
    from utils.stats import holm

    effect_rows, factor_rows = [], []
    protocols = list(dict.fromkeys(p for values in studies.values() for p in values))
    for protocol in protocols:
        models = sorted({m for values in studies.values() for m in values.get(protocol, {})})
        for model, variant in itertools.product(models, variants):
            per_study = {label: seed_changes(values.get(protocol, {}).get(model, {}), variant)
                         for label, values in studies.items()}
            for label, changes in per_study.items():
                if len(changes) >= 2:
                    effect_rows.append({"protocol": protocol, "model": model, "variant": variant, "study": label,
                                        **summary(list(changes.values()))})
            for a, b in itertools.combinations(studies, 2):
                seeds = sorted(set(per_study[a]) & set(per_study[b]), key=str)
                if len(seeds) >= 2:
                    differences = [per_study[a][s] - per_study[b][s] for s in seeds]
                    factor_rows.append({"protocol": protocol, "model": model, "variant": variant,
                                        "comparison": f"{a} - {b}", **summary(differences)})
    frames = []
    for rows in (effect_rows, factor_rows):
        frame = pd.DataFrame(rows)
        if len(frame):
            frame["holm"] = holm(frame["p"].to_numpy())
        frames.append(frame)
    return frames[0], frames[1]


def _pct(value, points=False):
    if value is None or pd.isna(value):
        return "n/a"
    return f"{value * 100:+.1f} pp" if points else f"{value:+.1%}"


def _p(value):
    return "n/a" if value is None or pd.isna(value) else f"{value:.3f}"


def table(frame, key, points=False):
    """Markdown lines of one family's rows."""
    if not len(frame):
        return ["(no pair of seeds ran)"]
    head = ["protocol", "model", "variant", key, "seeds", "mean", "95 % interval", "p", "Holm p", "detectable"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for row in frame.itertuples():
        cells = [row.protocol, row.model, row.variant, getattr(row, key), str(row.n), _pct(row.mean, points),
                 f"{_pct(row.low, points)} to {_pct(row.high, points)}", _p(row.p), _p(row.holm),
                 "n/a" if pd.isna(row.mde) else f"±{_pct(row.mde, points).lstrip('+')}"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render(effect, factor, labels, paths, metric):
    studies = ", ".join(f"`{label}` = `{path}`" for label, path in zip(labels, paths, strict=True))
    return [
        f"# Does the factor change the effect? Test {metric}, studies: {studies}",
        "",
        "Written by `tools/compare_effects.py`. **Effect**: the per-seed relative change of the variant against its "
        "own study's baseline; **factor**: the per-seed difference of two studies' effects (percentage points), "
        "paired by seed. Means, 95 % t-intervals and two-sided t-tests are on the same scale; Holm's correction "
        f"within each family: {len(effect)} effects, {len(factor)} factor differences. 'Detectable': the smallest "
        "true mean a paired t-test at this number of seeds and spread finds with power 0.8 at alpha 0.05.",
        "",
        "## The effect in each study",
        "",
        *table(effect, "study"),
        "",
        "## The factor: does the effect differ between studies?",
        "",
        *table(factor, "comparison", points=True),
        "",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compare_effects.py", description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="+", metavar="LABEL=PATH", help="two or more studies")
    parser.add_argument("--variants", nargs="+", default=["llmkt", "shuffled"], help="variants against baseline")
    parser.add_argument("--metric", default="ndcg@10", help="the metric compared (default ndcg@10)")
    parser.add_argument("--out", help="write the tables to this markdown file")
    args = parser.parse_args(argv)
    try:
        parsed = [parse_study(s) for s in args.studies]
        labels = [label for label, _ in parsed]
        if len(parsed) < 2 or len(set(labels)) != len(labels):
            raise UserError(f"studies {', '.join(labels)}: need two or more, each label once",
                            "e.g. orig=A/runs.csv converged=B/runs.csv")
        studies = {label: study_values(path, args.metric) for label, path in parsed}
        effect, factor = effects(studies, args.variants)
        if not len(effect):
            raise UserError(f"no variant of {', '.join(args.variants)} ran with a baseline on 2 or more seeds",
                            "check --variants against the studies' variant names")
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return 2
    lines = render(effect, factor, labels, [p for _, p in parsed], args.metric)
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        if out.resolve() in {Path(p).resolve() for _, p in parsed}:
            print(f"error: --out {out} is one of the inputs; hint: write the tables elsewhere", file=sys.stderr)
            return 2
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
