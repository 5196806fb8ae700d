"""Does a re-run reproduce the journaled numbers? Compare the test results of two journals, experiment by experiment.

    python tools/compare_journals.py experiments/audit_ml100k/audit_journal.csv RERUN/audit_rerun_journal.csv
    python tools/compare_journals.py docs/results/audit/runs.csv RERUN/audit_rerun_journal.csv

Experiments are matched by their file's name (a re-run may live in another folder); for each pair, every metric of
every training part's ``best_test_res`` (and ``best_val_res`` with ``--valid``) is compared after rounding to
``--decimals`` places (default 4). Either side may be a report's ``runs.csv`` (report.py: the last part's test
metrics of each experiment, the numbers a report commits); then the metrics it holds are compared. Prints one line
per pair and exits 0 when every pair agrees, 1 when one differs, 2 on bad input (one line).
"""

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the project's packages

from utils.errors import UserError  # noqa: E402
from utils.journal import checked_metrics, results_cell  # noqa: E402

RUNS_COLUMNS = ("experiment", "model", "variant", "seed", "part")  # report.py's runs.csv, before the metrics
# report.py's runs.csv also holds metrics it derives from the history (the cold users' mean: cold_users:ndcg@10), which
# no journal cell holds: compared when both sides are runs.csv files, skipped against a journal
DERIVED = ("cold_users:",)


def finished(journal, keys=frozenset({"best_test_res"})):
    """({experiment file name: {'train_k:metric': value}}, whether the file is a report's runs.csv): the
    finished experiments of a journal (rows whose status is done, the last one per name) or of a runs.csv."""
    path = Path(journal)
    if not path.is_file():
        raise UserError(f"journal {journal} does not exist", "give the .csv that run_exps.py wrote")
    try:
        frame = pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"journal {journal} cannot be read: {' '.join(str(exc).split())[:200]}",
                        "give the .csv that run_exps.py wrote") from None
    if frame.index.name == "experiment" and set(RUNS_COLUMNS[1:]) <= set(frame.columns):
        frame = frame.reset_index()
        metrics = [c for c in frame.columns if c not in RUNS_COLUMNS]
        rows = frame.iterrows()
        return {row["experiment"]: runs_metrics(journal, number, row, metrics) for number, row in rows}, True
    if "config" not in frame.columns or "status" not in frame.columns:
        raise UserError(f"{journal} is neither an experiments journal (no 'config' and 'status' columns) nor a "
                        "report's runs.csv", "give the .csv that run_exps.py or report.py wrote")
    done = frame[frame["status"] == "done"]
    return {Path(row["config"]).name: results(row, keys, journal, number) for number, row in done.iterrows()}, False


def runs_metrics(journal, number, row, metrics):
    """{'train_k:metric': value} of one runs.csv row; a cell that is no finite number is one line naming it."""
    out = {}
    for metric in metrics:
        if row[metric] == "":
            continue
        try:
            value = float(row[metric])
        except ValueError:
            value = row[metric]
        out[f"train_{row['part']}:{metric}"] = checked_metrics(journal, number, metric, {metric: value})[metric]
    return out


def results(row, keys, journal, number):
    """{'train_k:metric': value} of one journal row's result cells (JSON, or the original tool's Python-repr
    dicts); a cell that holds no mapping of metric to a finite number is one line naming it."""
    out = {}
    for column, cell in row.items():
        part, _, key = column.partition(":")
        if key in keys:
            for metric, value in results_cell(journal, number, column, cell).items():
                out[f"{part}:{'valid ' if key == 'best_val_res' else ''}{metric}"] = value
    return out


def compare(first, second, decimals=4, valid=False):
    """[(name, differences)] for each experiment both journals finished; differences: [(key, a, b)]."""
    keys = frozenset({"best_test_res", "best_val_res"} if valid else {"best_test_res"})
    (a, a_runs), (b, b_runs) = finished(first, keys), finished(second, keys)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise UserError(f"{first} and {second} have no finished experiment in common",
                        "experiments are matched by the name of their .yaml file")
    report = []
    for name in shared:
        mine, theirs = a[name], b[name]
        # a runs.csv holds the last part's test metrics only: compare those
        compared = (set(mine) if a_runs else set()) | (set(theirs) if b_runs else set()) or set(mine) | set(theirs)
        if a_runs != b_runs:
            compared = {key for key in compared if not key.split(":", 1)[1].startswith(DERIVED)}
        differences = [(key, mine.get(key), theirs.get(key)) for key in sorted(compared)
                       if key not in mine or key not in theirs
                       or round(float(mine[key]), decimals) != round(float(theirs[key]), decimals)]
        report.append((name, len(compared), differences))
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(prog="compare_journals.py", description=__doc__.splitlines()[0])
    parser.add_argument("first", help="a journal .csv")
    parser.add_argument("second", help="the journal of the re-run")
    parser.add_argument("--decimals", type=int, default=4, help="places compared after rounding (default 4)")
    parser.add_argument("--valid", action="store_true", help="compare the validation results too")
    args = parser.parse_args(argv)
    try:
        report = compare(args.first, args.second, args.decimals, args.valid)
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return 2
    for name, count, differences in report:
        if not differences:
            print(f"same       {name}: {count} metrics agree to {args.decimals} decimals")
            continue
        print(f"DIFFERENT  {name}: {len(differences)} of {count} metrics")
        for key, mine, theirs in differences:
            print(f"           {key}: {mine} vs {theirs}")
    same = sum(not d for _, _, d in report)
    print(f"{same} of {len(report)} experiments reproduce to {args.decimals} decimals")
    return 0 if same == len(report) else 1


if __name__ == "__main__":
    sys.exit(main())
