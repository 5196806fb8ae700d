"""Turn journals into a report: mean ± std over seeds, change against the baseline, paired tests, plots.

    python report.py experiments/benchmark_ml100k/ [--out DIR] [--on test|valid] [--curves first|all|none]
    python report.py experiments/audit_cold2_ml100k/ experiments/audit_cold5_ml100k/ --out DIR   # several at once

Experiments are grouped by model and variant (the journal's ``variant`` column, set by a scenario's ``set:
{variant: ...}``; without it, runs with a distillation loss are 'llmkt' and the others 'baseline'). The result of
an experiment is that of its last training part. Each variant is compared with its model's baseline over the seeds
both have (paired t-test, scipy). Writes ``report.md`` with the tables, ``runs.csv`` (every experiment's numbers),
``bars.png``, ``activity.png`` (test NDCG by quartile of users' training activity) and training curves, and prints
the table on stdout. Results of a second protocol (``uni100:ndcg@10``, ...) get their own table and a verdict on
whether the ordering of the variants changes, and one table gives each variant's gain under every protocol;
variants on leaky profiles are marked; cold-start users (and items) are shown apart, and a cold-start run's model
is named with its setting (``NeuMF [cold users k=2]``), so that runs of several k side by side stay apart.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from utils.errors import UserError
from utils.journal import checked_metrics, is_journal_header
from utils.journal import parse_cell as _json

DEFAULT_METRICS = ("ndcg@10", "hit@10", "recall@10")
LOWER_IS_BETTER = ("logloss", "rmse", "mae")


def find_journals(path):
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path} does not exist", "give a journal .csv or the folder that holds it")
    journals = sorted(p for p in path.glob("*.csv") if p.is_file())
    if not journals:
        raise UserError(f"no journal (.csv) in {path}", "run the experiments first, or give the journal's folder")
    return journals


def read_journal(journal):
    """A journal as a frame of strings; one line for a file that is empty, not UTF-8, not a CSV or not a journal."""
    try:
        frame = pd.read_csv(journal, index_col=0, dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise UserError(f"journal {journal} is empty", "no experiment has been journaled in it yet") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"journal {journal} is not UTF-8 text (at byte {exc.start})",
                        "give a journal written by run_exps.py") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise UserError(f"journal {journal} cannot be read as a CSV: {detail}",
                        "give a journal written by run_exps.py") from None
    if not is_journal_header(list(frame.columns)):
        raise UserError(f"{journal} is not an experiments journal (no 'config' and 'status' columns)",
                        "give a journal written by run_exps.py")
    return frame


def history_path(journal, cell):
    """The history file a journal row names: only ever a file in the journal's folder (``history/...``)."""
    if not cell:
        return None
    folder = Path(journal).parent.resolve()
    path = (folder / cell).resolve()
    if Path(cell).is_absolute() or not path.is_relative_to(folder):
        raise UserError(f"journal {journal}: history_file {cell!r} is not in the journal's folder",
                        "history files are read only from history/ beside the journal; fix or clear that cell")
    return str(path)


def read_history(path):
    try:
        history = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"history file {path} cannot be read: {' '.join(str(exc).split())[:200]}",
                        "clear its history_file cell in the journal, or restore the file") from None
    if not isinstance(history, dict) or not isinstance(history.get("parts"), dict):
        raise UserError(f"history file {path} is not a history written by run_exps.py")
    return history


def _parts(row):
    return sorted({int(c.split(":")[0][6:]) for c in row.index if c.startswith("train_") and ":" in c})


def load_runs(journals, on="test"):
    """One row per finished experiment: model, variant, seed, the last part's metrics, history file."""
    rows = []
    for journal in journals:
        frame = read_journal(journal)
        for number, row in frame.iterrows():
            if row.get("status", "done") not in ("done", ""):
                continue
            key = "best_test_res" if on == "test" else "best_val_res"
            results = [(p, _json(row.get(f"train_{p}:{key}"))) for p in _parts(row)]
            for p, parsed in results:
                cell_text = row.get(f"train_{p}:{key}") or ""
                if cell_text.strip() and not isinstance(parsed, dict):
                    raise UserError(f"journal {journal}: row {number}, train_{p}:{key} {cell_text[:80]!r} cannot be "
                                    "read as results (a mapping of metric to number)",
                                    "fix or clear that cell, then rerun report.py")
            results = [(p, r) for p, r in results if isinstance(r, dict) and r]
            if not results:
                continue
            part, metrics = results[-1]
            metrics = checked_metrics(journal, number, f"train_{part}:{key}", metrics)
            main = (row.get("eval_test_mode") or "main") if on == "test" else "valid"
            protocols = split_protocols(metrics, main)
            history = row.get("history_file")
            model = row.get("model") or row.get("model_type")
            setting = setting_label(row)
            rows.append({
                "journal": str(journal), "config": row["config"], "model": f"{model} [{setting}]" if setting else model,
                "variant": variant_label(row), "seed": row.get("seed", ""), "part": part,
                "metrics": protocols.get(main, {}), "protocol": main, "protocols": protocols,
                "leaky": is_leaky(row), "history": history_path(journal, history), "epochs": epochs_of(row),
                "base_model": model, "cold": cold_setting(row),
            })
    if not rows:
        raise UserError(f"no finished experiment with {on} results in {', '.join(map(str, journals))}",
                        "a journal row counts when its status is done and it has a train_k:best_"
                        f"{'test' if on == 'test' else 'val'}_res")
    return pd.DataFrame(rows)


RUNS_TABLE_HEAD = ["experiment", "model", "variant", "seed", "part"]  # the first columns runs_table writes
MAIN_PROTOCOL = "main"  # a runs.csv does not say which protocol its unprefixed metrics are (full ranking here)


def is_runs_table(path):
    """Whether ``path`` is a runs.csv written by this report (first columns experiment, model, variant, seed,
    part), not a journal."""
    path = Path(path)
    if not path.is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.readline().strip().split(",")[:5] == RUNS_TABLE_HEAD


def load_runs_table(path):
    """The runs of a committed runs.csv, shaped as :func:`load_runs` shapes a journal's (no histories, so no
    activity, epochs or curves): a study can be re-analysed without its journal. Unprefixed metrics are the
    experiments' own protocol, named ``main``; ``uni100:ndcg@10`` is protocol uni100, and so on."""
    frame = pd.read_csv(path, dtype={"seed": str})
    metric_columns = [c for c in frame.columns if c not in RUNS_TABLE_HEAD]
    rows = []
    for record in frame.to_dict("records"):
        metrics = {c: float(record[c]) for c in metric_columns if not pd.isna(record[c])}
        protocols = split_protocols(metrics, MAIN_PROTOCOL)
        rows.append({"journal": str(path), "config": record["experiment"], "model": record["model"],
                     "variant": record["variant"], "seed": str(record["seed"]), "part": int(record["part"]),
                     "metrics": protocols.get(MAIN_PROTOCOL, {}), "protocol": MAIN_PROTOCOL, "protocols": protocols,
                     "leaky": "leaky" in str(record["variant"]), "history": None, "epochs": {},
                     "base_model": str(record["model"]).split(" [")[0], "cold": None})
    if not rows:
        raise UserError(f"{path} holds no runs", "give a runs.csv written by report.py, or a journal")
    return pd.DataFrame(rows)


def runs_table(runs):
    """One row per experiment (its file name, model, variant, seed, the part reported) with every metric of every
    protocol, keyed as in the journal (``ndcg@10``, ``uni100:ndcg@10``): the numbers a re-run is checked against
    (tools/compare_journals.py reads this file as well as journals)."""
    rows = []
    for run in runs.itertuples():
        row = {"experiment": Path(run.config).name, "model": run.model, "variant": run.variant, "seed": run.seed,
               "part": run.part}
        for name, metrics in run.protocols.items():
            row.update({metric if name == run.protocol else f"{name}:{metric}": value
                        for metric, value in metrics.items()})
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame.sort_values(["model", "variant", "seed"], key=lambda c: c.astype(str), kind="stable")


def epochs_of(row):
    """{part: (epochs run, best epoch)} from the journal's ``train_k:epochs_run`` / ``train_k:best_epoch``."""
    out = {}
    for part in _parts(row):
        run, best = row.get(f"train_{part}:epochs_run", ""), row.get(f"train_{part}:best_epoch", "")
        if str(run).strip() not in ("", "nan"):
            out[part] = (int(float(run)), int(float(best)) if str(best).strip() not in ("", "nan") else None)
    return out


def epochs_table(runs):
    """Per model and variant, the mean epochs run and mean best epoch of each training part (early stopping's
    effect: a best epoch well before the last shows a converged training); None when the journal has none."""
    rows = []
    for run in runs.itertuples():
        for part, (ran, best) in (getattr(run, "epochs", None) or {}).items():
            rows.append({"model": run.model, "variant": run.variant, "part": part, "ran": ran, "best": best})
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    frame["best"] = frame["best"].astype(float)
    grouped = frame.groupby(["model", "variant", "part"], sort=True).agg(
        ran=("ran", "mean"), best=("best", "mean"), low=("ran", "min"), high=("ran", "max"))
    grouped["cell"] = [f"{r.ran:.0f} ({r.low}-{r.high}), best {r.best:.0f}" for r in grouped.itertuples()]
    table = grouped["cell"].unstack("part")
    table.columns = [f"train_{part}: epochs run (range), best" for part in table.columns]
    return table.reset_index()


def cold_setting(row):
    """('users' or 'items', k) of a cold-start run (the journal's ``cold_start``), None for any other."""
    cold = _json(row.get("cold_start"))
    if not isinstance(cold, dict) or "k" not in cold:
        return None
    return ("items" if "items" in cold else "users", int(cold["k"]))


def setting_label(row):
    """'cold users k=2' for a cold-start run (the journal's ``cold_start``), '' for any other."""
    cold = cold_setting(row)
    return f"cold {cold[0]} k={cold[1]}" if cold else ""


def is_leaky(row):
    """Whether the run's profiles were written from validation and test interactions too (journal ``profiles``)."""
    return "leaky (history: all)" in str(row.get("profiles") or "")  # ProfileSpec.label() of leaky profiles


def variant_label(row):
    """The run's variant as the report shows it; runs on leaky profiles always say so."""
    distilled = any(row.get(f"train_{p}:loss_name") for p in _parts(row))
    variant = row.get("variant") or ("llmkt" if distilled else "baseline")
    if is_leaky(row) and "leaky" not in variant.lower():
        variant += " (leaky)"
    return variant


def split_protocols(metrics, main):
    """{protocol: {metric: value}}: a key ``<mode>:<metric>`` (``uni100:ndcg@10``, written by a second
    ``test_eval {mode: ...}``) belongs to that mode, any other key to the experiment's own protocol ``main``."""
    out = {}
    for key, value in metrics.items():
        mode, sep, name = key.rpartition(":")
        out.setdefault(mode if sep else main, {})[name] = value
    return out


def by_protocol(runs):
    """{protocol: runs whose ``metrics`` are that protocol's}, the experiments' own protocol first."""
    names = list(dict.fromkeys(list(runs["protocol"]) + [p for ps in runs["protocols"] for p in ps]))
    out = {}
    for name in names:
        metrics = runs["protocols"].map(lambda ps, name=name: ps.get(name, {}))
        chosen = runs.assign(metrics=metrics)[metrics.map(bool)]
        if len(chosen):
            out[name] = chosen
    return out


def variant_order(summary, metric):
    """{model: variants from best to worst by mean ``metric``}."""
    rows = summary[summary["metric"] == metric].sort_values("mean", ascending=metric in LOWER_IS_BETTER)
    return {model: list(group["variant"]) for model, group in rows.groupby("model", sort=True)}


def ordering_lines(summaries, metric):
    """Per model, the order of the variants under each protocol, and whether it changes between them."""
    orders = {name: variant_order(summary, metric) for name, summary in summaries.items()}
    lines = []
    for model in sorted(set().union(*orders.values())):
        seen = {name: order[model] for name, order in orders.items() if model in order}
        same = len({tuple(v) for v in seen.values()}) == 1
        verdict = "same ordering" if same else "the ordering CHANGES"
        if not same and not any_significant(summaries, model, metric):
            verdict += " (within noise: no variant differs from the baseline with p < 0.05 under any protocol)"
        detail = "; ".join(f"{name}: {' > '.join(order)}" for name, order in seen.items())
        lines.append(f"- {model} ({metric}): {verdict} under {', '.join(seen)} ({detail})")
    return lines


def any_significant(summaries, model, metric, level=0.05):
    """Whether some variant of ``model`` differs from its baseline with p < ``level`` under some protocol."""
    for summary in summaries.values():
        rows = summary[(summary["model"] == model) & (summary["metric"] == metric)]
        if any(p is not None and not pd.isna(p) and p < level for p in rows["p"]):
            return True
    return False


def gain_table(summaries, metric):
    """Per model and variant, its change against the baseline (and the paired p) under each protocol, side by side:
    e.g. how much of a leaky variant's gain under uni100 remains for train-only profiles under full ranking."""
    rows = []
    for name, summary in summaries.items():
        chosen = summary[(summary["metric"] == metric) & summary["change"].notna()]
        for row in chosen.itertuples():
            rows.append({"model": row.model, "variant": row.variant, "protocol": name,
                         "cell": f"{row.change:+.1%} (p={p_text(row.p)})"})
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    table = frame.pivot_table(index=["model", "variant"], columns="protocol", values="cell", aggfunc="first",
                              sort=False)
    return table.reset_index()[["model", "variant"] + [n for n in summaries if n in set(frame["protocol"])]]


def decomposition_lines(summaries, metric, honest="llmkt", leaky="leaky"):
    """In words, per model: the paper-style gain (leaky profiles, the sampled protocol), how much of it leakage
    accounts for (leaky vs train-only profiles under that protocol), how much the sampled protocol (train-only
    profiles, sampled vs full ranking) and what survives (train-only profiles, full ranking, with its p-value).
    Empty unless both variants ran under the experiments' own protocol and a second one."""
    if len(summaries) < 2:
        return []
    (main, full), (other, sampled) = list(summaries.items())[:2]

    def change(summary, model, variant):
        rows = summary[(summary["model"] == model) & (summary["variant"] == variant) & (summary["metric"] == metric)]
        if not len(rows) or rows["change"].isna().all():
            return None
        return rows.iloc[0]

    lines = []
    for model in sorted(set(full["model"])):
        paper, train_other, train_main = (change(sampled, model, leaky), change(sampled, model, honest),
                                          change(full, model, honest))
        if paper is None or train_other is None or train_main is None:
            continue
        lines.append(
            f"- {model}: the paper-style gain ({leaky} profiles, {other}) is {paper.change:+.1%}; with train-only "
            f"profiles under {other} it is {train_other.change:+.1%}, so leakage accounts for "
            f"{100 * (paper.change - train_other.change):+.1f} points; under {main} ranking it is "
            f"{train_main.change:+.1%}, so the sampled protocol accounts for "
            f"{100 * (train_other.change - train_main.change):+.1f} points; what survives: "
            f"{train_main.change:+.1%} (p={p_text(train_main.p)}).")
    return lines


def paired_p(values, baseline):
    """Two-sided paired t-test p-value over matched seeds (None with fewer than 2 pairs or no variance)."""
    from scipy import stats

    if len(values) < 2:
        return None
    diff = np.asarray(values) - np.asarray(baseline)
    if np.allclose(diff, diff[0]):
        return 0.0 if diff[0] != 0 else 1.0
    return float(stats.ttest_rel(values, baseline).pvalue)


def summarize(runs, metrics):
    """Rows (model, variant, metric, n, mean, std, change vs baseline, p) in a DataFrame."""
    out = []
    for model, of_model in runs.groupby("model", sort=True):
        by_variant = {v: g.set_index("seed") for v, g in of_model.groupby("variant")}
        base = by_variant.get("baseline")
        order = (["baseline"] if base is not None else []) + sorted(v for v in by_variant if v != "baseline")
        for variant in order:
            group = by_variant[variant]
            for metric in metrics:
                values = group["metrics"].map(lambda m, metric=metric: m.get(metric, np.nan)).astype(float)
                row = {"model": model, "variant": variant, "metric": metric, "n": int(values.notna().sum()),
                       "mean": values.mean(), "std": values.std(ddof=1) if values.notna().sum() > 1 else 0.0,
                       "change": None, "p": None}
                if base is not None and variant != "baseline":
                    seeds = sorted(set(group.index) & set(base.index))
                    mine = [group.loc[s, "metrics"].get(metric, np.nan) for s in seeds]
                    theirs = [base.loc[s, "metrics"].get(metric, np.nan) for s in seeds]
                    base_mean = float(np.mean(theirs)) if seeds else math.nan
                    row["change"] = (np.mean(mine) - base_mean) / base_mean if seeds and base_mean else None
                    row["p"] = paired_p(mine, theirs)
                out.append(row)
    return pd.DataFrame(out)


def p_text(p):
    """A p-value as the tables print it: three decimals, or n/a (fewer than 2 seeds, no variance)."""
    return "n/a" if p is None or pd.isna(p) else f"{p:.3f}"


def cell(row):
    text = f"{row['mean']:.4f} ± {row['std']:.4f}"
    if row["change"] is not None and not pd.isna(row["change"]):
        text += f" ({row['change']:+.1%}, p={p_text(row['p'])})"
    return text


def wide_table(summary):
    summary = summary.assign(cell=summary.apply(cell, axis=1))
    table = summary.pivot_table(index=["model", "variant", "n"], columns="metric", values="cell", aggfunc="first",
                                sort=False)
    return table.reset_index()[["model", "variant", "n"] + list(dict.fromkeys(summary["metric"]))]


def markdown_cell(value):
    """A table cell: a '|' escaped and line breaks as spaces, so a name cannot break the table."""
    return " ".join(str(value).split()).replace("|", "\\|")


def markdown_table(frame):
    header = "| " + " | ".join(map(markdown_cell, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = ["| " + " | ".join(markdown_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *lines])


# --- user activity ------------------------------------------------------------------------------------------------


def activity_breakdown(runs, metric="ndcg@10", quarters=4):
    """Mean per-user test metric by quartile of training activity, averaged over seeds."""
    rows = []
    for run in runs.itertuples():
        if not run.history or not Path(run.history).is_file():
            continue
        history = read_history(run.history)
        per_user = history["parts"].get(str(run.part), {}).get("test_per_user")
        if not per_user or metric not in per_user:
            continue
        activity, values = np.asarray(per_user["activity"]), np.asarray(per_user[metric])
        edges = np.quantile(activity, np.linspace(0, 1, quarters + 1))
        bins = np.clip(np.searchsorted(edges, activity, side="right") - 1, 0, quarters - 1)
        for q in range(quarters):
            mask = bins == q
            if mask.any():
                rows.append({"model": run.model, "variant": run.variant, "seed": run.seed, "quartile": f"Q{q + 1}",
                             "range": f"{activity[mask].min()}-{activity[mask].max()}", "value": values[mask].mean()})
    if not rows:
        return None
    return summarize_activity(pd.DataFrame(rows))


def cold_breakdown(runs, metric="ndcg@10"):
    """Mean per-user test metric of the cold-start users and of the others, averaged over seeds; None when no run
    has cold-start users."""
    rows = []
    for run in runs.itertuples():
        per_user = _per_user(run)
        if not per_user or metric not in per_user or not any(per_user.get("cold") or []):
            continue
        cold, values = np.asarray(per_user["cold"], dtype=bool), np.asarray(per_user[metric])
        for name, mask in (("cold users", cold), ("other users", ~cold)):
            if mask.any():
                rows.append({"model": run.model, "variant": run.variant, "seed": run.seed, "quartile": name,
                             "range": str(int(mask.sum())), "value": values[mask].mean()})
    return summarize_activity(pd.DataFrame(rows)) if rows else None


def _per_user(run):
    if not run.history or not Path(run.history).is_file():
        return None
    return read_history(run.history)["parts"].get(str(run.part), {}).get("test_per_user")


def summarize_activity(frame):
    """Mean ± std over seeds per (model, variant, quartile), with the change against the model's baseline in the
    same quartile and a paired t-test over seeds (a seed fixes the split, hence the users of each quartile)."""
    out = []
    for (model, variant, quartile), group in frame.groupby(["model", "variant", "quartile"], sort=True):
        row = {"model": model, "variant": variant, "quartile": quartile, "range": group["range"].iloc[0],
               "mean": group["value"].mean(), "std": group["value"].std(ddof=1) if len(group) > 1 else 0.0,
               "n": len(group), "change": None, "p": None}
        base = frame[(frame["model"] == model) & (frame["variant"] == "baseline") & (frame["quartile"] == quartile)]
        if variant != "baseline" and len(base):
            paired = group.merge(base, on="seed", suffixes=("", "_base"))
            if len(paired):
                row["change"] = paired["value"].mean() / paired["value_base"].mean() - 1
                row["p"] = paired_p(list(paired["value"]), list(paired["value_base"]))
        out.append(row)
    return pd.DataFrame(out)


def activity_table(breakdown):
    frame = breakdown.assign(cell=breakdown.apply(cell, axis=1))
    order = {v: i for i, v in enumerate(["baseline"] + sorted(set(frame["variant"]) - {"baseline"}))}
    table = frame.pivot_table(index=["model", "variant"], columns="quartile", values="cell", aggfunc="first")
    table = table.reset_index()
    return table.sort_values(["model", "variant"], key=lambda c: c.map(order) if c.name == "variant" else c)


# --- cold start: the gain against k -------------------------------------------------------------------------------

COLD_TARGET = 0.10  # what would count as profiles helping the cold: +10 % on the cold users (items) with p < 0.05
FLOOR = 5e-4  # journals keep 4 decimals (RecBole rounds its metrics): a ratio of means below 0.0005 is rounding


def cold_values(run, metric):
    """(the metric on the cold-start users or items, on the rest, {user: metric} of the cold users or None).

    User side: the mean of the per-user test metric over the cold users, and over the others. Item side: the
    ``cold_items:`` evaluation (the cold items' test interactions only), and the whole test split."""
    side = run.cold[0]
    if side == "items":
        return run.protocols.get("cold_items", {}).get(metric), run.metrics.get(metric), None
    per_user = _per_user(run)
    if not per_user or metric not in per_user or "cold" not in per_user:
        return None, None, None
    cold, values = np.asarray(per_user["cold"], dtype=bool), np.asarray(per_user[metric], dtype=float)
    if not cold.any():
        return None, None, None
    users = np.asarray(per_user.get("user") or np.arange(len(values)))
    return float(values[cold].mean()), float(values[~cold].mean()), pd.Series(values[cold], index=users[cold])


def pooled_user_p(variant, baseline):
    """(paired t, Wilcoxon) p-values over every (seed, cold user) pair: the per-user differences of all seeds pooled
    (a seed fixes the split and the cut, hence the same cold users in both runs); None without per-user values."""
    from scipy import stats

    diffs = [(v - b.reindex(v.index)).dropna() for v, b in zip(variant, baseline, strict=True)
             if v is not None and b is not None]
    diffs = np.concatenate([d.to_numpy() for d in diffs]) if diffs else np.array([])
    if len(diffs) < 2 or np.allclose(diffs, 0):
        return None
    return float(stats.ttest_1samp(diffs, 0.0).pvalue), float(stats.wilcoxon(diffs, method="approx").pvalue)


def cold_gain(runs, metric="ndcg@10", baseline="baseline"):
    """One row per cold-start setting (side, model, k) and variant: the metric on the cold users (items) of the
    baseline and of the variant over the seeds both ran, the change, the paired p over seeds, a 95 % interval of the
    per-seed change, the pooled per-user p (user side) and the change on the rest; None without cold-start runs."""
    from scipy import stats

    chosen = runs[runs["cold"].notna()] if "cold" in runs else runs.iloc[:0]
    rows = []
    for (setting, model), group in chosen.groupby([chosen["cold"], chosen["base_model"]], sort=False):
        values = {(run.variant, run.seed): cold_values(run, metric) for run in group.itertuples()}
        base = {seed: v for (variant, seed), v in values.items() if variant == baseline and v[0] is not None}
        for variant in sorted({variant for variant, _ in values} - {baseline}):
            seeds = sorted((s for (v, s), val in values.items() if v == variant and val[0] is not None and s in base),
                           key=str)
            if not seeds:
                continue
            var, bas = [values[(variant, s)] for s in seeds], [base[s] for s in seeds]
            per_seed = np.array([v[0] / b[0] - 1 if b[0] >= FLOOR else np.nan for v, b in zip(var, bas, strict=True)])
            per_seed = per_seed[~np.isnan(per_seed)]  # a seed whose baseline is at the rounding floor has no ratio
            if max(np.mean([v[0] for v in var]), np.mean([b[0] for b in bas])) < FLOOR:
                per_seed = per_seed[:0]  # no change of the means, so none per seed either (table and plot agree)
            n_change = len(per_seed)
            n = len(seeds)
            half = (stats.t.ppf(0.975, n_change - 1) * per_seed.std(ddof=1) / math.sqrt(n_change) if n_change > 1
                    else np.nan)
            mean_var, mean_base = np.mean([v[0] for v in var]), np.mean([b[0] for b in bas])
            rest_var, rest_base = [v[1] for v in var], [b[1] for b in bas]
            rows.append({
                "side": setting[0], "model": model, "k": setting[1], "variant": variant, "n": n,
                "baseline": mean_base, "value": mean_var,
                "change": relative_change(mean_var, mean_base) if max(mean_var, mean_base) >= FLOOR else np.nan,
                "p": paired_p([v[0] for v in var], [b[0] for b in bas]),
                "seed_change": float(per_seed.mean()) if n_change else np.nan,
                "seeds_up": f"{int((per_seed > 0).sum())} of {n_change}" if n_change else "n/a",
                "ci": half, "user_p": pooled_user_p([v[2] for v in var], [b[2] for b in bas]),
                "rest_change": np.mean(rest_var) / np.mean(rest_base) - 1 if None not in rest_var + rest_base else None,
                "rest_p": paired_p(rest_var, rest_base) if None not in rest_var + rest_base else None,
            })
    if not rows:
        return None
    return pd.DataFrame(rows).sort_values(["side", "model", "variant", "k"], kind="stable").reset_index(drop=True)


def relative_change(value, baseline):
    """value / baseline - 1; from a baseline of 0, inf for any gain and nan for none."""
    if baseline:
        return value / baseline - 1
    return np.inf if value > 0 else np.nan


def change_text(change):
    if pd.isna(change):
        return "n/a (both under 0.0005)"
    return "up from 0" if np.isinf(change) else f"{change:+.1%}"


def cold_gain_table(gains):
    def user_p(pair):
        return f"{p_text(pair[0])} / {p_text(pair[1])}" if pair else "n/a"

    return pd.DataFrame({
        "side": gains["side"], "model": gains["model"], "k": gains["k"], "variant": gains["variant"],
        "seeds": gains["n"], "baseline": gains["baseline"].map("{:.4f}".format),
        "variant's": gains["value"].map("{:.4f}".format),
        "change (p over seeds)": [f"{change_text(c)} (p={p_text(p)})" for c, p in zip(gains["change"], gains["p"],
                                                                                      strict=True)],
        "seeds up": gains["seeds_up"],
        "95% interval of the per-seed change": [f"{m - h:+.1%} to {m + h:+.1%}" if not pd.isna(h) else "n/a"
                                                for m, h in zip(gains["seed_change"], gains["ci"], strict=True)],
        "p over users (t / Wilcoxon)": gains["user_p"].map(user_p),
        "rest: change (p)": [f"{c:+.1%} (p={p_text(p)})" if c is not None and not pd.isna(c) else "n/a"
                             for c, p in zip(gains["rest_change"], gains["rest_p"], strict=True)],
    })


def cold_verdict(gains, metric="ndcg@10", target=COLD_TARGET):
    """In words: which settings reach the target (change >= target, p over seeds < 0.05), or that none does and
    the largest change measured."""
    reached = gains[(gains["change"] >= target) & gains["p"].map(lambda p: p is not None and p < 0.05)]
    name = "{r.variant} on {r.model}, cold {r.side} k={r.k}".format
    if len(reached):
        return [f"- Reaches the target (+{target:.0%} {metric} on the cold {r.side}, p < 0.05): {name(r=r)}, "
                f"{change_text(r.change)} (p={p_text(r.p)})" for r in reached.itertuples()]
    finite = gains[np.isfinite(gains["change"].astype(float))]
    if finite.empty:
        return [f"- No setting reaches the target: no relative change could be computed ({metric} under 0.0005)."]
    best = finite.loc[finite["change"].idxmax()]
    return [f"- No setting reaches the target (+{target:.0%} {metric} on the cold users or items with p < 0.05 over "
            f"seeds) in the {len(gains)} tried; the largest relative change is {change_text(best['change'])} "
            f"(p={p_text(best['p'])}), {name(r=best)}."]


# --- statistics: intervals and tests on one scale, Holm's correction, detectable effects ----------------------------

# Direct tests of what sentences claim besides "differs from the baseline": (variant, reference) when both ran.
CONTRASTS = (
    ("llmkt", "shuffled"),  # does the right person's profile beat the wrong person's?
    ("leaky", "llmkt"),  # what leakage adds over train-only profiles
    ("template", "template_remapped"),  # the ladder: world knowledge of the item texts (a - b)
    ("template_remapped", "svd_train"),  # the ladder: template text against the interactions alone
    ("oracle_valid", "template"),  # the ladder: the channel's capacity against what the profiles carry
    ("sparse_llmkt", "llmkt"),  # issue 22: sparse table updates against RecBole's dense ones, with distillation
)
COLD_USERS = "cold_users"  # the protocol name of the cold-start users' per-user mean (user-side cold start)


def add_cold_user_metrics(runs):
    """Runs of a user-side cold start get a protocol ``cold_users``: the mean per-user test metrics of their cold
    users (from the history), so that they are tested, tabled and written to runs.csv like any protocol."""
    if "cold" not in runs or not runs["cold"].notna().any():
        return runs
    protocols = []
    for run in runs.itertuples():
        extra = {}
        if run.cold and run.cold[0] == "users" and COLD_USERS not in run.protocols:
            per_user = _per_user(run)
            if per_user and per_user.get("cold") and any(per_user["cold"]):
                cold = np.asarray(per_user["cold"], dtype=bool)
                extra = {COLD_USERS: {k: round(float(np.mean(np.asarray(v, dtype=float)[cold])), 5)
                                      for k, v in per_user.items() if "@" in k}}
        protocols.append({**run.protocols, **extra})
    return runs.assign(protocols=protocols)


def paired_statistics(protocols, metric, contrasts=CONTRASTS):
    """One row per test: every variant against its model's baseline, and every contrast of CONTRASTS that ran, under
    every protocol: the per-seed relative change (utils.stats.paired_change: mean, 95 % t-interval, t-test p, the
    minimum detectable effect), then Holm's adjusted p within each family ('baseline': the tests against the
    baseline; 'direct': the contrasts) over all models and protocols of the report."""
    from utils.stats import holm, paired_change

    rows = []
    for name, of in protocols.items():
        for model, group in of.groupby("model", sort=True):
            values = {}
            for run in group.itertuples():
                value = run.metrics.get(metric)
                if value is not None and not pd.isna(value):
                    values.setdefault(run.variant, {})[str(run.seed)] = float(value)
            pairs = [(v, "baseline") for v in sorted(values) if v != "baseline" and "baseline" in values]
            pairs += [(a, b) for a, b in contrasts if a in values and b in values]
            for variant, reference in pairs:
                seeds = sorted(set(values[variant]) & set(values[reference]), key=str)
                if len(seeds) < 2:
                    continue
                change = paired_change([values[variant][s] for s in seeds], [values[reference][s] for s in seeds])
                rows.append({"family": "baseline" if reference == "baseline" else "direct", "protocol": name,
                             "model": model, "variant": variant, "reference": reference, **vars(change)})
    if not rows:
        return None
    frame = pd.DataFrame(rows)
    frame["holm"] = np.nan
    for index in frame.groupby("family").groups.values():
        frame.loc[index, "holm"] = holm(frame.loc[index, "p"].to_numpy())
    return frame


def _pct(value):
    return "n/a" if value is None or pd.isna(value) else f"{value:+.1%}"


def statistics_table(stats):
    return pd.DataFrame({
        "protocol": stats["protocol"], "model": stats["model"],
        "comparison": [f"{v} vs {r}" for v, r in zip(stats["variant"], stats["reference"], strict=True)],
        "seeds": stats["n"], "mean per-seed change": stats["mean"].map(_pct),
        "95% interval": [f"{_pct(lo)} to {_pct(hi)}" for lo, hi in zip(stats["low"], stats["high"], strict=True)],
        "p (t on the per-seed change)": stats["p"].map(p_text), "Holm p": stats["holm"].map(p_text),
        "detectable (power 0.8)": stats["mde"].map(lambda m: "n/a" if pd.isna(m) else f"±{m:.1%}"),
    })


def ladder_lines(stats):
    """The ladder's two questions in words, when its variants ran: the external-knowledge effect (template against
    remapped item texts) and the channel's capacity (the oracle against the baseline), Holm-adjusted."""
    lines = []
    for row in stats.itertuples():
        where = f"{row.model}, {row.protocol}"
        interval = f"{_pct(row.mean)} (95 % interval {_pct(row.low)} to {_pct(row.high)}, p = {p_text(row.p)}, Holm " \
                   f"p = {p_text(row.holm)}, n = {row.n})"
        if (row.variant, row.reference) == ("template", "template_remapped"):
            lines.append(f"- External knowledge (a - b: real against remapped item texts), {where}: {interval}.")
        elif (row.variant, row.reference) == ("oracle_valid", "baseline"):
            lines.append(f"- Channel capacity (ORACLE, validation items encoded; never the test items) against the "
                         f"baseline, {where}: {interval}.")
    return lines


def statistics_report(protocols, metric):
    """The report's statistics section (markdown lines, console lines); empty when no pair of seeds exists."""
    stats = paired_statistics(protocols, metric)
    if stats is None:
        return [], []
    counts = stats["family"].value_counts()
    table = statistics_table(stats)
    text = (f"Test {metric}, every comparison paired over seeds. The quantity is the per-seed relative change "
            "(variant / reference - 1); its mean, the 95 % t-interval of that mean and the two-sided one-sample "
            "t-test are all on that scale, so the interval excludes 0 exactly when p < 0.05. Holm's correction runs "
            f"over each family across all models and protocols of this report: {counts.get('baseline', 0)} tests "
            f"against the baseline, {counts.get('direct', 0)} direct tests between variants "
            f"({', '.join(f'{a} vs {b}' for a, b in CONTRASTS)}, where both ran). 'Detectable': the smallest mean "
            "per-seed change a paired t-test at this number of seeds and this spread finds with power 0.8 at "
            "alpha 0.05, two-sided (noncentral t). (The p-values of the tables above are paired t-tests on the "
            "raw metric, uncorrected; they differ slightly from these.)")
    lines = ["## Statistics: intervals, Holm-corrected tests, detectable effects", "", text, "",
             markdown_table(table), ""]
    ladder = ladder_lines(stats)
    if ladder:
        lines += ["### The ladder", "", *ladder, ""]
    return lines, ["statistics (per-seed relative change, Holm within each family):", table.to_string(index=False),
                   *ladder, ""]


# --- plots --------------------------------------------------------------------------------------------------------


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported only when a report is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path


def plot_bars(summary, path, on="test"):
    """Per metric, a group of bars per model (one per variant, mean ± std over seeds; leaky variants hatched); the
    y axis is zoomed to the data, since differences between variants are small next to the values."""
    plt = pyplot()
    metrics = list(dict.fromkeys(summary["metric"]))
    models = list(dict.fromkeys(summary["model"]))
    variants = list(dict.fromkeys(summary["variant"]))
    colors = {v: plt.get_cmap("tab20")(i % 20) for i, v in enumerate(variants)}
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.6 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = summary[summary["metric"] == metric]
        for i, model in enumerate(models):
            of_model = rows[rows["model"] == model]
            width = 0.8 / max(len(of_model), 1)
            for j, row in enumerate(of_model.itertuples()):
                ax.bar(i - 0.4 + (j + 0.5) * width, row.mean, width, yerr=row.std, capsize=2,
                       color=colors[row.variant], label=row.variant,
                       hatch="//" if "leaky" in row.variant else None)  # leaky variants stand out
        low, high = (rows["mean"] - rows["std"]).min(), (rows["mean"] + rows["std"]).max()
        margin = 0.15 * (high - low) or 0.01
        ax.set_ylim(max(0.0, low - margin), high + margin)
        ax.set_xticks(range(len(models)), models)
        ax.set_title(f"{on} {metric}, mean ± std over seeds")
        ax.set_ylabel(f"{metric} (axis zoomed)")
    handles = {h.get_label(): h for ax in axes[0] for h in ax.containers}
    fig.legend([handles[v] for v in variants if v in handles], [v for v in variants if v in handles],
               loc="lower center", ncol=min(len(variants), 6), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08 + 0.04 * ((len(variants) - 1) // 6), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_activity(breakdown, path, metric="ndcg@10"):
    plt = pyplot()
    models = list(dict.fromkeys(breakdown["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.6), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        of_model = breakdown[breakdown["model"] == model]
        for variant, group in of_model.groupby("variant", sort=False):
            ax.errorbar(group["quartile"], group["mean"], yerr=group["std"], marker="o", capsize=3, label=variant)
        ranges = of_model.drop_duplicates("quartile").set_index("quartile")["range"]
        ax.set_xticks(range(len(ranges)), [f"{q}\n({r})" for q, r in ranges.items()])
        ax.set_title(f"{model}: test {metric} by user activity")
        ax.set_xlabel("quartile of training interactions (range)")
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_cold_gain(gains, path, metric="ndcg@10", target=COLD_TARGET):
    """The change of the cold users' (items') metric against k, one line per model and variant, one panel per side:
    the mean per-seed change with its 95 % interval, the target and zero marked."""
    plt = pyplot()
    sides = list(dict.fromkeys(gains["side"]))
    fig, axes = plt.subplots(1, len(sides), figsize=(4.8 * len(sides), 3.8), squeeze=False)
    for ax, side in zip(axes[0], sides, strict=True):
        of_side = gains[gains["side"] == side]
        for (model, variant), group in of_side.groupby(["model", "variant"], sort=False):
            group = group.sort_values("k")
            ax.errorbar(group["k"], 100 * group["seed_change"], yerr=100 * group["ci"].fillna(0), marker="o",
                        capsize=3, label=f"{model} {variant}")
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.axhline(100 * target, color="grey", linestyle="--", linewidth=0.8, label=f"target +{target:.0%}")
        ax.set_xticks(sorted(set(of_side["k"])))
        ax.set_xlabel(f"k (training interactions left to each cold {side[:-1]})")
        ax.set_ylabel(f"change of cold {side}' test {metric} (%)")
        ax.set_title(f"cold {side}: LLM-KT against the baseline")
        ax.legend(fontsize=8)
    return save(fig, path)


def plot_curves(run, path, metric="ndcg@10"):
    """Model loss, distillation loss and the validation metric per epoch, phases one after another."""
    plt = pyplot()
    history = read_history(run.history)
    epochs, boundaries = [], []
    for part in sorted(history["parts"], key=int):
        for train in history["parts"][part].get("trains", []):
            if epochs:
                boundaries.append(len(epochs) - 0.5)
            epochs += [{**e, "part": part} for e in train["epochs"] or []]
    if not epochs:
        return None
    x = np.arange(len(epochs))
    series = {
        "model loss (per batch)": [e.get("model_loss") for e in epochs],
        "distillation loss (per batch)": [e.get("distil_loss") for e in epochs],
        f"valid {metric}": [e.get("valid", {}).get(metric) for e in epochs],
    }
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (title, values) in zip(axes, series.items(), strict=True):
        values = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.plot(x, values, marker=".")
        for b in boundaries:
            ax.axvline(b, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(title)
        ax.set_xlabel("epoch (dashed: next phase)")
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"{run.model} {run.variant} seed {run.seed}: {run.config}")
    return save(fig, path)


def choose_curves(runs, mode):
    if mode == "none":
        return runs.iloc[0:0]
    with_history = runs[runs["history"].notna()]
    if mode == "all":
        return with_history
    first = with_history.sort_values("seed").groupby(["model", "variant"], sort=True).head(1)
    return first.sort_values(["model", "variant"])


# --- main ---------------------------------------------------------------------------------------------------------


def chosen_metrics(runs, metrics, protocol=MAIN_PROTOCOL):
    """The asked ``metrics`` that every experiment measured (all it measured in common, when none of them): a
    variant without a metric must not be tabled as ``n = 0, nan`` beside the others. A metric some experiments
    lack is left out with a note; experiments with no metric in common are one error line."""
    measured = runs["metrics"].map(frozenset)
    shared = frozenset.intersection(*measured)
    if not shared:
        groups = runs.assign(measured=measured).groupby(["model", "variant"], sort=False)["measured"]
        listing = "; ".join(f"{model}/{variant}: {', '.join(sorted(frozenset().union(*sets)))}"
                            for (model, variant), sets in groups)
        raise UserError(f"the experiments share no {protocol} metric ({listing[:300]})",
                        "report experiments that measured the same metrics (RecBole's metrics and topk), or report "
                        "them separately")
    left = sorted(m for m in frozenset().union(*measured) - shared if m in metrics)
    if left:
        print(f"note: {', '.join(left)} left out of the {protocol} tables: not measured by every experiment",
              file=sys.stderr)
    return [m for m in metrics if m in shared] or sorted(shared)


def common_metric(summaries):
    """The first metric every protocol reports (ndcg@10 when all have it)."""
    shared = set.intersection(*(set(s["metric"]) for s in summaries.values()))
    first = next(iter(summaries.values()))
    return next((m for m in dict.fromkeys(first["metric"]) if m in shared), first["metric"].iloc[0])


def protocol_title(name):
    """A section title: the mode (``uni100``), or what a subset of the test split is (``cold_items``)."""
    return {"cold_items": "cold_items (the cold-start items' test interactions only)"}.get(name, name)


def leaky_note(runs):
    if not runs["leaky"].any():
        return []
    return ["**Leaky variants** (marked *leaky*) used profiles written from every interaction, validation and test "
            "included (`build_profiles.history: all`): they show what leakage would add, not a result.", ""]


def protocol_heading(summaries, main):
    if len(summaries) == 1:
        return []
    return [f"## Protocol {main} (the experiments' own)", ""]


def once_each(paths):
    """The paths in their order, a file given twice (or through another name) counted once."""
    seen = {}
    for path in paths:
        seen.setdefault(Path(path).resolve(), path)
    return list(seen.values())


def build_report(paths, out=None, on="test", curves="first", metrics=DEFAULT_METRICS):
    paths = [paths] if isinstance(paths, (str, Path)) else paths
    tables = [Path(path) for path in paths if is_runs_table(path)]
    journals = [journal for path in paths if not is_runs_table(path) for journal in find_journals(path)]
    journals = once_each(journals)
    out = Path(out) if out else (journals or tables)[0].parent / "report"
    inputs = {path.resolve() for path in journals + tables}
    for name in ("runs.csv", "report.md"):
        if (out / name).resolve() in inputs:
            raise UserError(f"--out {out}: the report's {name} would overwrite the input {out / name}",
                            "give --out another folder (default: <journal folder>/report)")
    out.mkdir(parents=True, exist_ok=True)
    loaded = ([load_runs(journals, on=on)] if journals else []) + [load_runs_table(t) for t in tables]
    runs = add_cold_user_metrics(pd.concat(loaded, ignore_index=True))
    journals = journals + tables
    protocols = by_protocol(runs)
    summaries = {name: summarize(of, chosen_metrics(of, metrics, name)) for name, of in protocols.items()}
    main = next(iter(summaries))
    summary, table = summaries[main], wide_table(summaries[main])
    lines = [f"# Report: {', '.join(str(j) for j in journals)}", "",
             f"{len(runs)} finished experiments; {on} results of each experiment's last training part, mean ± std "
             "over seeds; for each variant the relative change of the mean against its model's baseline and a "
             "two-sided paired t-test over the seeds both ran.", ""]
    lines += leaky_note(runs) + protocol_heading(summaries, main) + [markdown_table(table), ""]
    figures = [plot_bars(summary, out / "bars.png", on)]
    lines += [f"![{on} metrics by model and variant](bars.png)", ""]
    for name, other in list(summaries.items())[1:]:
        lines += [f"## Protocol {protocol_title(name)}", "", markdown_table(wide_table(other)), ""]
        figures.append(plot_bars(other, out / f"bars_{name}.png", f"{on} ({name})"))
        lines += [f"![{on} metrics under {name}](bars_{name}.png)", ""]
    extra = []
    for name, other in list(summaries.items())[1:]:
        extra += [f"{on} results under protocol {name}:", wide_table(other).to_string(index=False), ""]
    if len(summaries) > 1:
        ordering = ordering_lines(summaries, common_metric(summaries))
        gains = gain_table(summaries, common_metric(summaries))
        if gains is not None:
            lines += [f"## Gain over the baseline under each protocol ({common_metric(summaries)})", "",
                      "The change of each variant's mean against its model's baseline, with the paired p-value over "
                      "seeds, one column per protocol.", "", markdown_table(gains), ""]
            extra += ["gain over the baseline under each protocol:", gains.to_string(index=False), ""]
        reading = decomposition_lines(summaries, common_metric(summaries))
        if reading:
            lines += [f"## Where a paper-style gain comes from ({common_metric(summaries)})", "",
                      "Differences of relative changes, in percentage points; each step changes one thing.", "",
                      *reading, ""]
            extra += ["where a paper-style gain comes from:", *reading, ""]
        lines += ["## Does the protocol change the ordering of the variants?", "",
                  "Variants ordered by their mean; a swap of two variants whose difference is not significant (see "
                  "the p-values above) may be noise.", "", *ordering, ""]
        extra += ["does the protocol change the ordering of the variants?", *ordering, ""]
    breakdown = activity_breakdown(runs) if on == "test" else None
    if breakdown is not None:
        lines += ["## Test NDCG@10 by user activity", "",
                  "Users split into quartiles of their number of training interactions (Q1: the sparsest).", "",
                  markdown_table(activity_table(breakdown)), "", "![by activity](activity.png)", ""]
        figures.append(plot_activity(breakdown, out / "activity.png"))
    epochs = epochs_table(runs)
    if epochs is not None:
        lines += ["## Epochs", "", "Mean epochs each training part ran (the range over seeds) and the mean epoch whose "
                  "validation result was kept; with early stopping, the best epoch before the last shows where "
                  "training converged.", "", markdown_table(epochs), ""]
    cold = cold_breakdown(runs) if on == "test" else None
    if cold is not None:
        lines += ["## Test NDCG@10 of the cold-start users", "",
                  "Users whose training history `cold_start` cut to k interactions, against the other users of the "
                  "same runs (range: how many users).", "", markdown_table(activity_table(cold)), ""]
        extra += ["test ndcg@10 of the cold-start users and of the others:",
                  activity_table(cold).to_string(index=False), ""]
    gains = cold_gain(runs) if on == "test" else None
    if gains is not None:
        cold_table = cold_gain_table(gains)
        lines += ["## Cold start: the gain against k", "",
                  "For each setting, test NDCG@10 on the cold users (their per-user mean; item side: the cold items' "
                  "test interactions only) of the baseline and the variant, averaged over the seeds both ran; the "
                  "change of the means with a paired t-test over seeds; in how many seeds the variant was ahead; a "
                  "95 % interval of the per-seed change; the "
                  "paired tests over every (seed, cold user) pair; and the change on the rest (user side: the other "
                  "users; item side: the whole test split). The test over seeds is the one the verdict uses: the "
                  "pooled tests count users as independent, while one training run moves all of its users "
                  "together, so their p-values are optimistic.", "", markdown_table(cold_table), "",
                  *cold_verdict(gains), "", "![gain against k](cold_gain.png)", ""]
        figures.append(plot_cold_gain(gains, out / "cold_gain.png"))
        extra += ["cold start, the gain against k:", cold_table.to_string(index=False), *cold_verdict(gains), ""]
        deep = cold_gain(runs, "recall@100")
        if deep is not None:
            deep_table = cold_gain_table(deep)
            lines += ["### Cold items at a deeper cut-off: recall@100", "",
                      "An item with a few training interactions rarely reaches a top 10 of all items; recall@100 "
                      "of the cold items' test interactions (is the item among a user's first 100?) shows a "
                      "difference that NDCG@10 cannot.", "", markdown_table(deep_table), ""]
            extra += ["cold items, recall@100:", deep_table.to_string(index=False), ""]
    stats_lines, stats_extra = statistics_report(protocols, common_metric(summaries))
    lines += stats_lines
    extra += stats_extra
    chosen = choose_curves(runs, curves)
    if len(chosen):
        lines += ["## Training curves", ""]
        for run in chosen.itertuples():
            name = f"curves_{run.model}_{run.variant}_s{run.seed}.png"
            name = "".join(c if c.isalnum() or c in "._-@" else "_" for c in name)
            if plot_curves(run, out / name):
                figures.append(out / name)
                lines += [f"![{run.config}]({name})", ""]
    runs_table(runs).to_csv(out / "runs.csv", index=False)
    lines += ["Every experiment's numbers: [runs.csv](runs.csv).", ""]
    (out / "report.md").write_text("\n".join(lines))
    return table, breakdown, out, figures, extra


def main(argv=None):
    parser = argparse.ArgumentParser(prog="report.py", description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="+", help="journal .csv files, or folders with journals (one or more)")
    parser.add_argument("--out", help="output folder (default: <journal folder>/report)")
    parser.add_argument("--on", choices=["test", "valid"], default="test", help="which results to report")
    parser.add_argument("--curves", choices=["first", "all", "none"], default="first",
                        help="training curves for the first seed of each model/variant, all runs, or none")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="comma-separated, e.g. ndcg@10,hit@10")
    args = parser.parse_args(argv)
    try:
        table, breakdown, out, figures, extra = build_report(args.path, args.out, args.on, args.curves,
                                                      [m.strip().lower() for m in args.metrics.split(",")])
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write the report: {exc.strerror}: {exc.filename}", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_colwidth", 60):
        print(table.to_string(index=False))
        if breakdown is not None:
            print("\ntest ndcg@10 by quartile of training activity (Q1 sparsest):")
            print(activity_table(breakdown).to_string(index=False))
        if extra:
            print("\n" + "\n".join(extra))
    print(f"\nwrote {out / 'report.md'} and {len(figures)} figure(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
