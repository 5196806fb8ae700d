"""The experiments journal: one CSV per folder, one row appended per experiment run.

Column names follow the journals existing analysis notebooks read (see ``BASE_COLUMNS`` and ``PART_FIELDS``);
columns are only ever added. Each append takes a file lock, copies the journal's bytes, adds the new record (new
column names go at the end of the header line; older rows keep every byte, their missing cells read as empty) and
replaces the file atomically with the same mode, so a crash at any moment leaves a readable CSV with every
finished row, and concurrent runs lose nothing. Earlier rows are never parsed and written back. The first,
unnamed column is the row number, as ``pandas`` writes it, so ``pd.read_csv(path, index_col=0)`` reads old and
new journals alike.

Lists and dicts are stored as JSON (``json.loads`` reads them back; so does ``ast.literal_eval`` for metrics).
"""

import ast
import contextlib
import csv
import fcntl
import io
import json
import math
import os
import stat
import tempfile
import time
from pathlib import Path

from .errors import UserError
from .params import JOURNAL_NAME
from .paths import writable

BASE_COLUMNS = [
    "subdir", "config", "start date", "start time", "end date", "end time", "dataset", "user_num", "item_num",
    "inter_num", "seed", "user_filter", "item_filter", "threshold", "model_type", "train_split", "eval_split",
    "eval_valid_mode", "eval_test_mode", "eval_valid_metric", "dist_loss_w",
]  # fmt: skip
PART_FIELDS = [
    "loss_name", "users_emb", "items_emb", "particular", "set_outputs", "set_trainable", "train_ds_ind", "config",
    "best_val_score", "best_val_res", "best_test_res", "bestmodel_file",
]  # fmt: skip
PART_EXTRA_FIELDS = ["loss_params", "reduce_dim", "epochs_run", "best_epoch", "train_time_s", "test_time_s",
                     "dist_loss_w"]  # dist_loss_w: the weight the part's train used (empty: no distillation)
EXTRA_COLUMNS = [
    "model", "variant", "status", "error", "duration_s", "config_hash", "log_file", "profiles", "history_file",
    "node", "run_id", "cold_start", "checkpoint_split",
]  # node, run_id: where a sweep on Ray ran the experiment, and its attempt-independent id (empty without Ray)
LIST_PART_FIELDS = ("set_trainable", "config", "reduce_dim")
MAX_ERROR_CHARS = 500  # an error cell is cut here; the whole line is on stderr and in the run's log


def bounded_error(error, log_file=None, limit=MAX_ERROR_CHARS):
    """An error line cut to ``limit`` characters, saying where the whole line is."""
    if error is None or len(error) <= limit:
        return error
    where = f"; the whole line is in {log_file}" if log_file else ""
    return f"{error[:limit]}... [{len(error) - limit} more characters{where}]"


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


def parse_cell(cell):
    """A JSON cell of a journal (a dict or list), or None; the original tool's Python-repr dicts
    (``{'ndcg@10': 0.3}``) are read too."""
    if isinstance(cell, str) and cell.strip().startswith(("{", "[")):
        try:
            return json.loads(cell)
        except json.JSONDecodeError:
            try:
                return ast.literal_eval(cell.strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return None
    return None


def checked_metrics(journal, number, column, metrics):
    """A results cell's metrics, each a finite number; one line naming the journal, row, column and value else."""
    for name, value in metrics.items():
        number_ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number_ok:
            raise UserError(f"journal {journal}: row {number}, {column}: {name} is {value!r}, not a finite number",
                            "fix or clear that cell (a run that produced it is not comparable), then rerun")
    return metrics


def results_cell(journal, number, column, cell):
    """The metrics of one results cell (``best_test_res``...): {} when empty, one line when it is no mapping of
    metric to a finite number."""
    if not isinstance(cell, str) or not cell.strip():
        return {}
    parsed = parse_cell(cell)
    if not isinstance(parsed, dict):
        raise UserError(f"journal {journal}: row {number}, {column} {cell[:80]!r} cannot be read as results (a "
                        "mapping of metric to number)", "fix or clear that cell, then rerun")
    return checked_metrics(journal, number, column, parsed)


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
        self.values["error"] = bounded_error(error, self.values.get("log_file"))
        self.values["duration_s"] = round(time.time() - self.started, 1)

    def columns(self):
        columns = list(BASE_COLUMNS)
        for part in sorted(set(self.parts) | self.declared) or [0]:
            columns += part_columns(part)
        return columns + EXTRA_COLUMNS

    def row(self):
        """Column name -> cell text, in journal order."""
        return {column: format_value(self.values.get(column)) for column in self.columns()}


def odd_lock(lock_path):
    return JournalError(f"the journal's lock {lock_path} is not a regular file (a symlink, a FIFO or a device)",
                        "remove it: the lock is an empty file this tool creates")


def refuse_odd_lock(lock_path):
    """Refuse a lock that exists and is no regular file: it is never written through or waited on."""
    if os.path.islink(lock_path) or os.path.exists(lock_path) and not os.path.isfile(lock_path):
        raise odd_lock(lock_path)


@contextlib.contextmanager
def locked(path):
    """An exclusive lock on ``<path>.lock`` for the duration of the block (blocks until free).

    The lock is opened without following a symlink and without blocking on a FIFO: a lock that is not a regular
    file (a link, a FIFO, a device) is refused in one line, never written through or waited on.
    """
    lock_path = f"{path}.lock"
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
    try:
        fd = os.open(lock_path, flags, 0o666)
    except OSError:
        refuse_odd_lock(lock_path)
        raise
    with os.fdopen(fd, "a") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise odd_lock(lock_path)
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class JournalError(UserError):
    """The journal itself cannot be used (a folder, unreadable, not UTF-8, not a journal, ...): the experiment is
    refused before it runs, and nothing is appended."""


def check_journal_name(name):
    """``journal_name`` checked by its declaration (:data:`utils.params.JOURNAL_NAME`), refused as a JournalError
    (a journal that cannot be used is never appended to)."""
    try:
        return JOURNAL_NAME.check(name, "journal_name")
    except UserError as exc:
        raise JournalError(exc.message, exc.hint) from None


def _records(text, start=0):
    """(start, end) offsets of the CSV records in ``text`` from ``start``; a record ends at a line end outside
    quotes (quotes inside a quoted cell are doubled, so an even count of quotes means the record is complete)."""
    spans, begin, quotes, position = [], start, 0, start
    while position < len(text):
        end = text.find("\n", position)
        end = len(text) if end < 0 else end + 1
        quotes += text.count('"', position, end)
        position = end
        if quotes % 2 == 0:
            if text[begin:end].strip():
                spans.append((begin, end))
            begin, quotes = end, 0
    if begin < len(text) and text[begin:].strip():
        spans.append((begin, len(text)))
    return spans


def _header_cells(line):
    with _large_fields():
        return next(csv.reader(io.StringIO(line)), [])


def _header_columns(line):
    """The column names of a header record (without the unnamed row-number column pandas writes)."""
    header = _header_cells(line)
    return header[1:] if header and header[0] == "" else header


def is_journal_header(columns):
    """A journal has a ``config`` column and ``subdir`` (upstream journals) or ``status`` (ours)."""
    return "config" in columns and bool({"subdir", "status"} & set(columns))


@contextlib.contextmanager
def _large_fields():
    """Let the csv module read cells of any size (a journal may hold long cells written by older versions)."""
    old = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        yield
    finally:
        csv.field_size_limit(old)


def read_rows(path):
    """(columns, rows as dicts) of a journal; ([], []) when it does not exist or is empty."""
    path = Path(path)
    if not path.is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as fh, _large_fields():
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return [], []
        columns = header[1:] if header and header[0] == "" else header
        skip = 1 if header and header[0] == "" else 0
        rows = [dict(zip(columns, line[skip:])) for line in reader if line]
    return columns, rows


def _default_mode():
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _csv_line(cells, terminator):
    """One CSV record ending in ``terminator``; a cell holding \\r or \\n is always quoted (the csv module quotes
    only the characters of its own line terminator)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()[:-2] + terminator


def _link_target(link):
    """The real file a journal symlink points to (followed: a journal shared through a link gets the rows); a
    loop or a link to nothing is refused."""
    try:
        target = link.resolve(strict=True)
    except RuntimeError:
        raise JournalError(f"journal {link} is a symlink loop", "replace the link by a file or a link to a "
                           "journal") from None
    except OSError:
        raise JournalError(f"journal {link} is a symlink to {os.readlink(link)}, which does not exist",
                           "create that journal or remove the link; a link is never replaced by a file") from None
    return target


def unreadable_record(text, records):
    """The 0-based number of the record that swallows the rest of the journal (a cell with an unclosed quote, e.g.
    from a hand edit), or None: every row after it would be invisible to --resume and report.py."""
    if not records:
        return None
    begin, end = records[-1]
    if text.count('"', begin, end) % 2 == 0:
        return None
    return len(records) - 1


class ExperimentsJournal:
    """Appends rows to one journal CSV under a file lock; the bytes of earlier rows are never changed.

    An append copies the file's bytes into a temporary file, adds the new record (and, when the row brings new
    columns, their names at the end of the header line), and renames it over the journal, keeping its mode.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.link = None  # the symlink the journal was named by, when it is one: rows go to its target
        if self.path.is_symlink():
            self.link, self.path = self.path, _link_target(self.path)

    def check(self):
        """Refuse, in one line, a journal that cannot be appended to.

        Raises:
            JournalError: a folder, a file that cannot be read or written, a folder where the journal (its temporary
                file and its lock) cannot be written, text that is not UTF-8, or a CSV that is not a journal.
        """
        self._read()
        refuse_odd_lock(f"{self.path}.lock")
        folder = self.path.parent
        if folder.exists() and not writable(folder):
            raise JournalError(f"journal {self.path}: its folder {folder} cannot be written",
                               "make the folder writable (the journal is replaced atomically through a temporary "
                               "file there), or move the experiment")
        if self.path.exists() and not writable(self.path):
            raise JournalError(f"journal {self.path} is read-only", "make it writable (chmod u+w) or set another "
                               "journal_name; it is never replaced behind your back")
        return self

    def _read(self):
        """The journal's text ('' when it does not exist), checked to be a readable UTF-8 journal."""
        path = self.path
        if path.is_dir():
            raise JournalError(f"journal {path} is a folder, not a file", "set journal_name to a .csv file name")
        if not path.exists():
            return ""
        if not path.is_file():
            raise JournalError(f"journal {path} is not a regular file", "set journal_name to a .csv file name")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise JournalError(f"journal {path} cannot be read: {exc.strerror}",
                               "make it readable or set another journal_name") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JournalError(f"journal {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                               f"{exc.start})", "it is not a journal this tool wrote: set another journal_name",
                               ) from None
        records = _records(text)
        broken = unreadable_record(text, records)
        if broken is not None:
            line = text.count("\n", 0, records[broken][0]) + 1
            raise JournalError(f"journal {path}: row {broken} (line {line}) has an unclosed quote, so it and every "
                               "row after it cannot be read", "fix that row by hand (a cell with a quote is "
                               "written \"...\"\"...\"), or set another journal_name")
        if records and not is_journal_header(_header_columns(text[slice(*records[0])])):
            first = text[slice(*records[0])].strip()
            raise JournalError(
                f"{path} is a CSV but not an experiments journal (header: {first[:80]!r})",
                "it has no 'config' and 'subdir'/'status' columns; it is left as it is: set another journal_name")
        return text

    def append(self, row):
        """Append one row (column -> text); columns new to the journal are added at the end of the header.

        Raises:
            JournalError: the journal cannot be used (see :meth:`check`) or written (e.g. the disk is full).
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with locked(self.path):
                self._append_locked(row)
        except OSError as exc:
            raise JournalError(f"cannot write the journal {self.path}: {exc.strerror or exc}",
                               "free space or fix the permissions; earlier rows are unchanged") from None

    def _append_locked(self, row):
        text = self._read()
        records = _records(text)
        if not records:
            columns, number, terminator, indexed = list(row), 0, "\r\n", True
            head, body = text + _csv_line([""] + columns, terminator), ""  # text: '' or blank lines, kept
        else:
            header = text[slice(*records[0])]
            terminator = "\r\n" if header.endswith("\r\n") else "\n"
            cells = _header_cells(header)
            indexed = cells[0] == ""  # the unnamed row-number column pandas writes
            columns = cells[1:] if indexed else cells
            new = [column for column in row if column not in columns]
            head = header if header.endswith("\n") else header + terminator
            if new:
                head = header.rstrip("\r\n") + _csv_line([""] + new, terminator)
                columns += new
            head = text[: records[0][0]] + head  # blank lines before the header, if any, are kept
            body = text[records[0][1]:]
            if body and not body.endswith("\n"):
                body += terminator
            number = len(records) - 1
        cells = [row.get(column, "") for column in columns]
        line = _csv_line([number] + cells if indexed else cells, terminator)
        mode = self.path.stat().st_mode & 0o7777 if self.path.exists() else _default_mode()
        written = head + body + line
        if len(_records(written)) != max(len(records), 1) + 1:  # what was written must read back as one more row
            raise JournalError(f"journal {self.path}: the new row would not read back as a row",
                               "the journal is left as it was; check its last rows by hand")
        self._replace(written, mode)

    def _replace(self, text, mode):
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def rows(self):
        return read_rows(self.path)[1]
