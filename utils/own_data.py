"""Your own interaction / user / item tables (CSV or TSV) turned into RecBole atomic files, checked on the way.

RecBole reads ``<data_path>/<name>/<name>.inter`` (and optionally ``.user``, ``.item``): tab-separated, with a
header whose every column is ``name:type`` (``token`` an id or category, ``float`` a number, ``token_seq`` a
space-separated list of tokens, e.g. a title or genres). Ids become ``user_id`` and ``item_id``, the rating
``rating`` and the time ``timestamp`` (seconds), the names every ready scenario loads.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError, suggest
from .paths import real_inside

TYPES = ("token", "float", "token_seq")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # as RecBole's own: ml-1m, amazon-cds-vinyl


@dataclass
class Table:
    """One output file: the frame (columns already named as in RecBole) and each column's type."""

    suffix: str
    frame: pd.DataFrame
    types: dict = field(default_factory=dict)

    def header(self):
        return "\t".join(f"{column}:{self.types[column]}" for column in self.frame.columns)


def read_table(path, sep=None):
    """A CSV (``,``) or TSV (tab) file as strings, the separator taken from ``sep`` or the file's extension."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        raise UserError(f"{path}: Parquet is not supported here (pyarrow is not among this tool's dependencies)",
                        "export the table as CSV or TSV, e.g. pandas.read_parquet(p).to_csv('table.csv', index=False)")
    sep = sep or ("\t" if suffix in (".tsv", ".tab", ".inter", ".user", ".item") else ",")
    try:
        frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise UserError(f"{path}: not a readable {'TSV' if sep == chr(9) else 'CSV'} table: {_first_line(exc)}",
                        "give a UTF-8 CSV/TSV with a header row (--sep for another separator)") from None
    frame.columns = [str(column).strip() for column in frame.columns]
    return frame


def _first_line(exc):
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def need_columns(frame, columns, path, flag):
    """Fail in one line on the first column the table lacks, with the nearest existing name."""
    for column in columns:
        if column not in frame.columns:
            raise UserError(f"{path}: no column '{column}' ({flag}){suggest(column, frame.columns)}",
                            f"its columns are: {', '.join(frame.columns)}")


def parse_columns(spec, flag):
    """``'age,gender:token,genres:token_seq'`` -> ``{'age': None, 'gender': 'token', 'genres': 'token_seq'}``."""
    out = {}
    for part in filter(None, (p.strip() for p in (spec or "").split(","))):
        name, _, kind = part.partition(":")
        if kind and kind not in TYPES:
            raise UserError(f"{flag}: unknown type '{kind}' for column '{name}'", f"use one of: {', '.join(TYPES)}")
        out[name] = kind or None
    return out


def numbers(frame, column, path, what):
    """The column as floats; one line on the first value that is not a number."""
    values = pd.to_numeric(frame[column].str.strip(), errors="coerce")
    bad = values.isna() | ~np.isfinite(values.fillna(0))  # 'inf' parses, as 1e309 overflows to inf: both refused
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise UserError(f"{path}: {what} column '{column}', row {row + 2}: {frame[column].iloc[row]!r} is not a "
                        "finite number", "fix or drop that row (row numbers count the header as row 1)")
    return values


def timestamps(frame, column, path):
    """Seconds since 1970: numbers as they are, dates (e.g. 2024-03-01 12:00) converted."""
    raw = frame[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce")
    if values.notna().all():
        return values
    dates = pd.to_datetime(raw, errors="coerce", utc=True)
    bad = dates.isna()
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise UserError(f"{path}: time column '{column}', row {row + 2}: {raw.iloc[row]!r} is neither a number "
                        "nor a date", "use seconds since 1970 or ISO dates (2024-03-01 or 2024-03-01T12:00:00)")
    return (dates - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds()


def ids(frame, column, path, what):
    values = frame[column].str.strip()
    empty = values.eq("")
    if empty.any():
        raise UserError(f"{path}: {what} column '{column}', row {int(empty.to_numpy().nonzero()[0][0]) + 2} is empty",
                        "every row needs an id")
    if values.str.contains(r"\s", regex=True).any():
        bad = values[values.str.contains(r"\s", regex=True)].iloc[0]
        raise UserError(f"{path}: {what} column '{column}' holds {bad!r}, an id with white space",
                        "ids are single tokens: replace spaces, e.g. with '_'")
    return values


def no_duplicates(values, path, what):
    counts = values.value_counts()
    repeated = counts[counts > 1]
    if len(repeated):
        raise UserError(f"{path}: {what} id {repeated.index[0]!r} appears {int(repeated.iloc[0])} times "
                        f"({len(repeated)} duplicated id(s) in all)", "one row per id in a user or item table")


def feature_column(frame, column, kind, path, list_sep):
    """A user/item feature: its values as RecBole writes them and its type (guessed when not given)."""
    raw = frame[column].astype(str).str.strip().str.replace("\t", " ", regex=False)
    if kind is None:
        numeric = pd.to_numeric(raw.replace("", None), errors="coerce")
        if len(raw) and numeric.notna().sum() == (raw != "").sum() and (raw != "").any():
            kind = "float"
        elif raw.str.contains(re.escape(list_sep), regex=True).any() or raw.str.contains(" ").any():
            kind = "token_seq"
        else:
            kind = "token"
    if kind == "float":
        bad = pd.to_numeric(raw, errors="coerce").isna() & raw.ne("")
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise UserError(f"{path}: column '{column}' (float), row {row + 2}: {raw.iloc[row]!r} is not a number",
                            f"fix that value, or give the column as {column}:token")
    if kind == "token_seq":
        raw = raw.str.replace(list_sep, " ", regex=False).str.split().str.join(" ")
    if kind == "token" and raw.str.contains(" ").any():
        raw = raw.str.replace(" ", "_", regex=False)
    return raw, kind


def check_name(name, what):
    if not NAME.match(name):
        raise UserError(f"{what} '{name}' is not usable as a RecBole field name",
                        "letters, digits and '_', not starting with a digit")


def interactions(path, user_col, item_col, rating_col=None, time_col=None, sep=None):
    frame = read_table(path, sep)
    need_columns(frame, [c for c in (user_col, item_col, rating_col, time_col) if c], path,
                 "--user-col / --item-col / --rating-col / --time-col")
    out = pd.DataFrame({"user_id": ids(frame, user_col, path, "user"), "item_id": ids(frame, item_col, path, "item")})
    types = {"user_id": "token", "item_id": "token"}
    if rating_col:
        out["rating"], types["rating"] = numbers(frame, rating_col, path, "rating"), "float"
    if time_col:
        out["timestamp"], types["timestamp"] = timestamps(frame, time_col, path), "float"
    if out.empty:
        raise UserError(f"{path}: no interactions", "the table has a header but no rows")
    return Table("inter", out, types)


def features(path, entity, id_col, columns, list_sep="|", sep=None):
    """A user or item table: its id and the named feature columns (types given or guessed)."""
    frame = read_table(path, sep)
    need_columns(frame, [id_col, *columns], path, f"--{entity}-id-col / --{entity}-cols")
    key = f"{entity}_id"
    out = pd.DataFrame({key: ids(frame, id_col, path, entity)})
    no_duplicates(out[key], path, entity)
    types = {key: "token"}
    for column, kind in columns.items():
        check_name(column, f"--{entity}-cols column")
        if column in (key, id_col):
            continue
        out[column], types[column] = feature_column(frame, column, kind, path, list_sep)
    return Table(entity, out, types)


LINK_HINT = ("a dataset file or folder that is a symlink out of its folder is refused: link the whole folder "
             "(data_path may point anywhere), or copy the file in")


def write_tables(folder, name, tables, force=False):
    """Write ``<folder>/<name>/<name>.<suffix>`` for each table; refuses to overwrite unless ``force``."""
    if not DATASET_NAME.match(name):
        raise UserError(f"--name '{name}' is not usable as a dataset name", "letters, digits, '_', '-' and '.'")
    target = Path(folder) / name
    for place in (Path(folder), target):
        if place.exists() and not place.is_dir():
            raise UserError(f"--out {folder}: {place} is a file, not a folder",
                            "give --out a folder (default: datasets)")
    paths = [target / f"{name}.{table.suffix}" for table in tables]
    for path in [target, *paths, *(target / f"{name}.{suffix}" for suffix in ("user", "item"))]:
        real_inside(folder, path, "--out", LINK_HINT)  # never written (or reported stale) through a link out
    for table in tables:
        refuse_line_breaks(table)
    if not any(t.suffix == "inter" for t in tables) and not (target / f"{name}.inter").is_file():
        from .data import download_url

        url = download_url(name)
        hint = (f"RecBole downloads {name} only into a missing folder: run an experiment on it once first"
                if url else "give --inter as well")
        raise UserError(f"{target / (name + '.inter')} does not exist, so there is no dataset to add a table to", hint)
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise UserError(f"{existing[0]} exists", "give --force to overwrite it, or another --name")
    if any(t.suffix == "inter" for t in tables):  # a new .inter with the old side tables would mix two datasets
        stale = [target / f"{name}.{suffix}" for suffix in ("user", "item")
                 if (target / f"{name}.{suffix}").exists() and not any(t.suffix == suffix for t in tables)]
        if stale:
            raise UserError(f"{stale[0]} would stay beside the new {name}.inter and describe the old data",
                            f"give --{stale[0].suffix[1:]}s as well, or delete {stale[0]} first")
    target.mkdir(parents=True, exist_ok=True)
    for table, path in zip(tables, paths, strict=True):
        frame = table.frame.copy()
        for column, kind in table.types.items():
            if kind == "float":
                frame[column] = pd.to_numeric(frame[column], errors="coerce").map(_number)
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(table.header() + "\n")
            frame.to_csv(fh, sep="\t", header=False, index=False, lineterminator="\n")
    return paths


def refuse_line_breaks(table):
    """Refuse a text cell holding a tab, a line feed or a carriage return: RecBole reads its files line by line and
    tab by tab, so such a cell would make a phantom row or shift the columns."""
    for column in table.frame.columns:
        values = table.frame[column]
        if values.dtype != object:
            continue
        bad = values.astype(str).str.contains(r"[\t\r\n]", regex=True)
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise UserError(f"the {table.suffix} table's column {column!r}, row {row + 2}: {values.iloc[row]!r} holds "
                            "a tab or a line break", "remove it from the source table (RecBole reads one row a line)")


def _number(value):
    if pd.isna(value):
        return ""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def experiment_lines(name, folder, tables, fields):
    """The lines to put in an experiment file for this dataset (RecBole part and profile fields); the file names are
    those of experiments/neumf/neumf_ml100k.yaml, so the lines can replace that file's own."""
    load = {table.suffix: list(table.frame.columns) for table in tables}
    lines = [f"    dataset: '{name}'", f"    data_path: '{folder}'", "    load_col:"]
    lines += [f"        {suffix}: [{', '.join(columns)}]" for suffix, columns in load.items()]
    lines += ["    eval_args:                     # full ranking over all items: honest, and fine with few items",
              "        split: {'RS': [0.8, 0.1, 0.1]}", "        group_by: user", "        order: RO",
              "        mode: full"]
    profile_fields = {key: value for key, value in fields.items() if value}
    user_table = next((t for t in tables if t.suffix == "user"), None)
    if user_table is not None:
        profile_fields["user"] = "[" + ", ".join(c for c in user_table.frame.columns if c != "user_id") + "]"
    lines += ["    llm_config:", "        embeddings_path: 'datasets/llm_embeddings'",
              "        build_profiles: {source: template, encoder: minilm, to: user_profiles_rs.json}"]
    if profile_fields:
        lines[-1] = lines[-1][:-1] + ","
        lines.append("                         fields: {"
                     + ", ".join(f"{key}: {value}" for key, value in profile_fields.items()) + "}}")
    lines.append("        preprocess_from_json: {from: user_profiles_rs.json, to: user_minilm384_rs.pt, by: recbole}")
    return lines
