"""The experiments journal: one CSV per folder, one row appended per experiment run.

Column names follow the journals existing analysis notebooks read (see ``BASE_COLUMNS`` and ``PART_FIELDS``);
columns are only ever added. Each append takes a file lock, reads the journal, adds the row (new columns are
empty in older rows) and replaces the file atomically, so a crash at any moment leaves a readable CSV with every
finished row, and concurrent runs lose nothing. The first, unnamed column is the row number, as ``pandas``
writes it, so ``pd.read_csv(path, index_col=0)`` reads old and new journals alike.

Lists and dicts are stored as JSON (``json.loads`` reads them back; so does ``ast.literal_eval`` for metrics).
"""

import contextlib
import csv
import fcntl
import json
import os
import tempfile
import time
from pathlib import Path

BASE_COLUMNS = [
    "subdir", "config", "start date", "start time", "end date", "end time", "dataset", "user_num", "item_num",
    "inter_num", "seed", "user_filter", "item_filter", "threshold", "model_type", "train_split", "eval_split",
    "eval_valid_mode", "eval_test_mode", "eval_valid_metric", "dist_loss_w",
]  # fmt: skip
PART_FIELDS = [
    "loss_name", "users_emb", "items_emb", "particular", "set_outputs", "set_trainable", "train_ds_ind", "config",
    "best_val_score", "best_val_res", "best_test_res", "bestmodel_file",
]  # fmt: skip
PART_EXTRA_FIELDS = ["loss_params", "reduce_dim", "epochs_run", "train_time_s", "test_time_s"]
EXTRA_COLUMNS = [
    "model", "variant", "status", "error", "duration_s", "config_hash", "log_file", "profiles", "history_file",
]
LIST_PART_FIELDS = ("set_trainable", "config", "reduce_dim")


def format_value(value):
    """A journal cell: '' for None, JSON for lists and dicts, ``str`` otherwise."""
    if value is None:
        return ""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=_json_default)
    return str(value)


def _json_default(value):
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    return str(value)


def part_columns(part):
    return [f"train_{part}:{name}" for name in PART_FIELDS + PART_EXTRA_FIELDS]


class JournalRecord:
    """The row of one experiment, filled in as its scenario runs.

    ``train_part`` (set by the scenario's ``set`` command) selects which ``train_k:`` columns the following steps
    fill; it starts at 0.
    """

    def __init__(self, config_file, subdir):
        self.started = time.time()
        self.values = {"subdir": subdir, "config": Path(config_file).name}
        self._stamp("start")
        self.parts = []
        self.declared = set()  # parts whose columns the row always has, reached or not
        self.train_part = 0

    def _stamp(self, which):
        date, clock = time.strftime("%Y-%m-%d %H:%M:%S").split(" ")
        self.values[f"{which} date"] = date
        self.values[f"{which} time"] = clock

    def set(self, column, value):
        self.values[column] = value

    def declare_parts(self, parts):
        """Always write these parts' column groups (empty where a run stops before reaching them), as the
        original tool did: a journal's columns then do not depend on how far its first experiment got."""
        self.declared.update(parts)

    def select_part(self, part):
        self.train_part = part
        self._ensure_part(part)

    def _ensure_part(self, part):
        if part not in self.parts:
            self.parts.append(part)
            for name in LIST_PART_FIELDS:
                self.values.setdefault(f"train_{part}:{name}", [])

    def set_part(self, name, value):
        self._ensure_part(self.train_part)
        self.values[f"train_{self.train_part}:{name}"] = value

    def add_part(self, name, value):
        """Append to a list-valued part column (``set_trainable``, ``config``, ``reduce_dim``)."""
        self._ensure_part(self.train_part)
        self.values[f"train_{self.train_part}:{name}"].append(value)

    def part_value(self, name, part=None):
        return self.values.get(f"train_{self.train_part if part is None else part}:{name}")

    def finish(self, status, error=None):
        self._stamp("end")
        self.values["status"] = status
        self.values["error"] = error
        self.values["duration_s"] = round(time.time() - self.started, 1)

    def columns(self):
        columns = list(BASE_COLUMNS)
        for part in sorted(set(self.parts) | self.declared) or [0]:
            columns += part_columns(part)
        return columns + EXTRA_COLUMNS

    def row(self):
        """Column name -> cell text, in journal order."""
        return {column: format_value(self.values.get(column)) for column in self.columns()}


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on ``<path>.lock`` for the duration of the block (blocks until free)."""
    lock_path = f"{path}.lock"
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def read_rows(path):
    """(columns, rows as dicts) of a journal; ([], []) when it does not exist."""
    path = Path(path)
    if not path.exists():
        return [], []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return [], []
        columns = header[1:] if header and header[0] == "" else header
        skip = 1 if header and header[0] == "" else 0
        rows = [dict(zip(columns, line[skip:])) for line in reader if line]
    return columns, rows


class ExperimentsJournal:
    """Appends rows to one journal CSV, atomically and under a file lock."""

    def __init__(self, path):
        self.path = Path(path)

    def append(self, row):
        """Append one row (column -> text); columns new to the journal are added at the end."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            columns, rows = read_rows(self.path)
            for column in row:
                if column not in columns:
                    columns.append(column)
            rows.append(row)
            self._write(columns, rows)

    def _write(self, columns, rows):
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow([""] + columns)
                for number, row in enumerate(rows):
                    writer.writerow([number] + [row.get(column, "") for column in columns])
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def rows(self):
        return read_rows(self.path)[1]
