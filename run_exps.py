"""Run one experiment file, or a folder of them, and journal the results.

    python run_exps.py experiments/<file.yaml or folder> [--start_with=n] [--check] [--resume] [--fail-fast]
                       [--workers N [--address HOST:PORT] [--cpus-per-experiment C] [--gpus-per-experiment G]]

A folder runs every ``.yaml`` directly in it, sorted by name; ``--start_with=n`` skips the first n of them.
A user mistake (bad YAML, unknown command, missing file, ...) is one line on stderr and exit status 2; a
failing experiment in a folder is journaled as failed and the next one starts.
"""

import argparse
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

from utils.errors import Interrupted, UserError

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="run_exps.py",
        description="Run LLM-knowledge-transfer experiments (RecBole scenarios) and journal their results.",
    )
    parser.add_argument("path", help="an experiment .yaml file, or a folder whose .yaml files run in name order")
    parser.add_argument("--start_with", "--start-with", type=int, default=0, metavar="N",
                        help="skip the first N experiments of the folder's sorted list (resume a batch)")
    parser.add_argument("--check", action="store_true",
                        help="check every experiment (YAML, commands, params, order, model, loss, dataset) and "
                             "train nothing; exit 0 when all pass, 2 otherwise")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failing experiment")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="run N experiments at a time, each in its own process, on Ray (default 1: one after "
                             "another in this process)")
    parser.add_argument("--address", default=None,
                        help="join this running Ray cluster (e.g. 127.0.0.1:6379) instead of starting a local one")
    parser.add_argument("--cpus-per-experiment", type=int, default=1, metavar="C",
                        help="with Ray: CPU cores (and torch threads) per experiment (default 1)")
    parser.add_argument("--gpus-per-experiment", type=float, default=0, metavar="G",
                        help="with Ray: GPUs per experiment, e.g. 1 or 0.5 (default 0)")
    parser.add_argument("--resume", action="store_true",
                        help="skip experiments whose journal already has a 'done' row for the same file with the "
                             "same content (an edited file runs again)")
    args = parser.parse_args(argv)
    if args.start_with < 0:
        parser.error(f"--start_with must be 0 or more, got {args.start_with}")
    if args.workers < 1 or args.cpus_per_experiment < 1 or args.gpus_per_experiment < 0:
        parser.error("--workers and --cpus-per-experiment must be 1 or more, --gpus-per-experiment 0 or more")
    return args


def list_experiments(path):
    """The experiment files of PATH: the file itself, or the folder's ``*.yaml`` / ``*.yml`` sorted by name."""
    path = Path(path)
    if path.is_file():
        if path.suffix not in (".yaml", ".yml"):
            raise UserError(f"{path} is not a .yaml file")
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
        if not files:
            raise UserError(f"no .yaml files in {path}", "give an experiment file or a folder of them")
        return files
    raise UserError(f"{path} does not exist", "give an experiment .yaml file or a folder of them")


def fail(message):
    print(f"error: {message}", file=sys.stderr, flush=True)


def check_only(files):
    from utils.data import download_note
    from utils.experiment import check_experiment

    failures = 0
    for file in files:
        try:
            checked = check_experiment(file)
        except UserError as exc:
            failures += 1
            fail(exc.line())
            continue
        print(f"ok: {file} ({checked.recbole['model']} on {checked.recbole['dataset']}, {len(checked.steps)} steps)")
        note = download_note(checked.config)
        if note:
            print(f"    note: {note}")
    return EXIT_USER if failures else EXIT_OK


def run_all(files, fail_fast, resume=False, parallel=None):
    """Run the experiments (in this process, or on Ray with ``parallel`` options); print a summary; exit code."""
    try:
        from utils.experiment import already_done
    except KeyboardInterrupt as exc:  # in the first seconds (imports): the experiment's own journaling never began
        journal_before_start(files[0], exc)
        raise

    outcomes, todo = [], []
    for number, file in enumerate(files, start=1):
        if resume and already_done(file):
            print(f"##### experiment {number}/{len(files)}: {file}: done before, unchanged: skipped", flush=True)
            outcomes.append((file, "skipped", 0.0, None))
        else:
            todo.append(file)
    if parallel:
        outcomes += run_on_ray(todo, fail_fast, parallel)
    else:
        outcomes += run_here(todo, files, fail_fast)
    return summarize(files, outcomes)


def journal_before_start(file, interruption):
    """Journal ``file`` as interrupted when the signal came before its run began (while the libraries load), with
    the standard library and the journal only: the promise of an ``interrupted`` row holds from the first second."""
    import yaml

    from utils.errors import UserError as Refused
    from utils.journal import ExperimentsJournal, JournalRecord, check_journal_name

    try:
        raw = yaml.safe_load(Path(file).read_text(encoding="utf-8"))
        name = check_journal_name(raw.get("journal_name", "journal.csv") if isinstance(raw, dict) else "journal.csv")
    except (OSError, ValueError, yaml.YAMLError, Refused):
        name = "journal.csv"
    record = JournalRecord(file, Path(file).resolve().parent.name)
    by = f" ({interruption})" if isinstance(interruption, Interrupted) else " by the user (Ctrl-C)"
    record.finish("interrupted", f"interrupted{by} before the experiment started")
    try:
        ExperimentsJournal(Path(file).parent / name).append(record.row())
    except Refused as exc:
        fail(f"{file}: not journaled: {exc.line()}")


def run_here(todo, files, fail_fast):
    from utils.experiment import run_experiment

    outcomes = []
    for file in todo:
        print(f"\n##### experiment {files.index(file) + 1}/{len(files)}: {file}", flush=True)
        started = time.time()
        try:
            status, _ = run_experiment(file)
            outcomes.append((file, status, time.time() - started, None))
        except UserError as exc:
            fail(exc.line())
            outcomes.append((file, "failed", time.time() - started, EXIT_USER))
        except Exception:
            traceback.print_exc()
            outcomes.append((file, "failed", time.time() - started, EXIT_BUG))
        if fail_fast and outcomes[-1][1] == "failed":
            break
    return outcomes


def run_on_ray(todo, fail_fast, options):
    from utils.parallel import run_parallel

    outcomes = []
    for outcome in run_parallel(todo, fail_fast=fail_fast, **options):
        code = {"user": EXIT_USER, "bug": EXIT_BUG}.get(outcome["kind"])
        if outcome["error"]:
            fail(f"{outcome['error']} (log: {outcome['log']})")
            if outcome.get("traceback"):
                print(outcome["traceback"], file=sys.stderr)
        outcomes.append((Path(outcome["file"]), outcome["status"], outcome["seconds"], code))
    return outcomes


def summarize(files, outcomes):
    if len(files) > 1:
        print("\n===== summary", flush=True)
        for file, status, seconds, _ in sorted(outcomes, key=lambda o: files.index(Path(o[0]))):
            print(f"{status:>8}  {seconds:8.1f}s  {file}")
        skipped = len(files) - len(outcomes)
        if skipped:
            print(f"{'skipped':>8}  {skipped} experiment(s) after the failure (--fail-fast)")
    codes = [code for *_, code in outcomes if code is not None]
    if not codes:
        return EXIT_OK
    failed = [str(file) for file, status, *_ in outcomes if status == "failed"]
    if len(files) > 1:  # a single experiment's error line has been printed: one line per failure
        fail(f"{len(failed)} of {len(files)} experiment(s) failed: {', '.join(failed)}")
    return EXIT_BUG if EXIT_BUG in codes else EXIT_USER


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        files = list_experiments(args.path)
    except UserError as exc:
        fail(exc.line())
        return EXIT_USER
    if args.start_with >= len(files) and len(files) > 0 and args.start_with:
        fail(f"--start_with={args.start_with} skips all {len(files)} experiment(s) in {args.path}")
        return EXIT_USER
    files = files[args.start_with:]
    if args.check:
        return check_only(files)
    parallel = None
    if args.workers > 1 or args.address:
        parallel = {"workers": args.workers, "address": args.address, "cpus_per_experiment": args.cpus_per_experiment,
                    "gpus_per_experiment": args.gpus_per_experiment}
    in_main_thread = threading.current_thread() is threading.main_thread()  # signals can only be handled there
    previous = signal.signal(signal.SIGTERM, _terminate) if in_main_thread else None
    previous_int = signal.signal(signal.SIGINT, _interrupt) if in_main_thread else None
    try:
        return run_all(files, args.fail_fast, args.resume, parallel)
    except KeyboardInterrupt as exc:
        by = f" by {exc}" if isinstance(exc, Interrupted) else ""
        fail(f"interrupted{by}: the running experiment is journaled as interrupted; --resume continues the batch")
        return EXIT_TERMINATED if isinstance(exc, Interrupted) else EXIT_INTERRUPTED
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
            signal.signal(signal.SIGINT, previous_int)


def _terminate(signum, frame):
    """SIGTERM (what a cluster scheduler or ``kill`` sends) ends the run as Ctrl-C does: journaled as interrupted."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the journaling
    raise Interrupted(signal.Signals(signum).name)


def _interrupt(signum, frame):
    """Ctrl-C: a KeyboardInterrupt once; a second Ctrl-C while the first is being journaled is ignored (no
    traceback out of the journaling)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
