"""The journal: spec columns, one row per run, earlier rows kept, readable by pandas."""

import json
from pathlib import Path

import pandas as pd

from utils.journal import BASE_COLUMNS, PART_FIELDS, ExperimentsJournal, JournalRecord


def record(name="exp.yaml", parts=(0,)):
    rec = JournalRecord(name, "neumf")
    for part in parts:
        rec.select_part(part)
        rec.set_part("loss_name", "NeumfUserRMSE")
        rec.set_part("best_val_res", {"ndcg@10": 0.25 + part})
        rec.add_part("set_trainable", [["*"], False])
        rec.add_part("config", {"epochs": 2})
    rec.finish("done")
    return rec


def test_row_has_the_spec_columns_for_each_part_used():
    row = record(parts=(0, 1)).row()
    for column in BASE_COLUMNS:
        assert column in row
    for part in (0, 1):
        for name in PART_FIELDS:
            assert f"train_{part}:{name}" in row
    assert "train_2:loss_name" not in row
    assert row["config"] == "exp.yaml" and row["subdir"] == "neumf" and row["status"] == "done"


def test_appends_keep_earlier_rows_and_pandas_reads_them(tmp_path):
    journal = ExperimentsJournal(tmp_path / "j.csv")
    journal.append(record("a.yaml").row())
    journal.append(record("b.yaml", parts=(0, 1)).row())
    frame = pd.read_csv(tmp_path / "j.csv", index_col=0)
    assert list(frame["config"]) == ["a.yaml", "b.yaml"]
    assert pd.isna(frame.loc[0, "train_1:loss_name"]) and frame.loc[1, "train_1:loss_name"] == "NeumfUserRMSE"
    assert json.loads(frame.loc[1, "train_1:best_val_res"]) == {"ndcg@10": 1.25}
    assert json.loads(frame.loc[0, "train_0:set_trainable"]) == [[["*"], False]]


def test_an_upstream_journal_gains_rows_without_losing_its_own(tmp_path):
    path = tmp_path / "old.csv"
    old = pd.DataFrame({column: ["x"] for column in BASE_COLUMNS + ["train_0:loss_name", "notes"]})
    old.to_csv(path)  # pandas writes the unnamed index column, as the original tool did
    ExperimentsJournal(path).append(record().row())
    frame = pd.read_csv(path, index_col=0)
    assert len(frame) == 2 and frame.loc[0, "notes"] == "x" and frame.loc[1, "status"] == "done"
    assert list(frame.columns[: len(BASE_COLUMNS)]) == BASE_COLUMNS


def test_no_temporary_files_are_left_behind(tmp_path):
    ExperimentsJournal(tmp_path / "j.csv").append(record().row())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.csv", "j.csv.lock"]


# --- appends never rewrite earlier rows; a journal that cannot be used is refused, never replaced ---------------

import errno  # noqa: E402
import os  # noqa: E402
import stat  # noqa: E402

import pytest  # noqa: E402

from utils.journal import MAX_ERROR_CHARS, JournalError, check_journal_name  # noqa: E402


def test_new_columns_keep_every_earlier_byte_of_every_row(tmp_path):
    path = tmp_path / "j.csv"
    path.write_bytes(b',config,status,notes\n0,a.yaml,done,"x, ""y""",extra cell\n1,b.yaml,done,,\n')
    before = path.read_bytes()
    ExperimentsJournal(path).append(record("c.yaml", parts=(0, 1)).row())
    after = path.read_bytes()
    old_rows = before[before.index(b"\n") + 1:]
    assert after[after.index(b"\n") + 1:].startswith(old_rows)  # rows byte for byte, the extra cell too
    assert after.split(b"\n")[0].startswith(b",config,status,notes,")  # header: old names first, new ones after
    frame = pd.read_csv(path, index_col=0)
    assert list(frame["config"]) == ["a.yaml", "b.yaml", "c.yaml"] and frame.loc[2, "status"] == "done"


def test_a_repeated_header_name_keeps_its_columns(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text(",config,status,seed,seed\n0,a.yaml,done,1,2\n")
    ExperimentsJournal(path).append({"config": "b.yaml", "status": "done"})
    lines = path.read_text().splitlines()
    assert lines[0] == ",config,status,seed,seed" and lines[1] == "0,a.yaml,done,1,2"
    assert lines[2] == "1,b.yaml,done,,"


def test_a_huge_error_is_cut_in_the_journal_and_later_appends_still_work(tmp_path):
    journal = ExperimentsJournal(tmp_path / "j.csv")
    rec = JournalRecord("a.yaml", "x")
    rec.set("log_file", "log/NeuMF/run.log")
    rec.finish("failed", "error: " + "v" * 200_000)
    journal.append(rec.row())
    journal.append(record("b.yaml").row())
    frame = pd.read_csv(tmp_path / "j.csv", index_col=0)
    assert len(frame.loc[0, "error"]) < MAX_ERROR_CHARS + 100 and "log/NeuMF/run.log" in frame.loc[0, "error"]
    assert list(frame["config"]) == ["a.yaml", "b.yaml"]


def test_an_old_journal_with_a_huge_cell_still_takes_appends(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text(",config,status,error\n0,a.yaml,failed," + "v" * 200_000 + "\n")
    ExperimentsJournal(path).append({"config": "b.yaml", "status": "done"})
    assert [row["config"] for row in ExperimentsJournal(path).rows()] == ["a.yaml", "b.yaml"]


def test_the_journal_mode_is_kept(tmp_path):
    path = tmp_path / "j.csv"
    ExperimentsJournal(path).append(record("a.yaml").row())
    os.chmod(path, 0o644)
    ExperimentsJournal(path).append(record("b.yaml").row())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_read_only_journal_is_refused_not_replaced(tmp_path):
    path = tmp_path / "j.csv"
    ExperimentsJournal(path).append(record("a.yaml").row())
    os.chmod(path, 0o444)
    before = path.read_bytes()
    with pytest.raises(JournalError, match="is read-only"):
        ExperimentsJournal(path).check()
    assert path.read_bytes() == before


@pytest.mark.parametrize("content, message", [
    (b"name,price\napple,3\n", "is a CSV but not an experiments journal"),
    (b",config,status\n0,\xff\xfe.yaml,done\n", "is not UTF-8 text"),
])
def test_a_file_that_is_not_a_journal_is_refused_and_left_as_it_is(tmp_path, content, message):
    path = tmp_path / "j.csv"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=message):
        ExperimentsJournal(path).append(record().row())
    assert path.read_bytes() == content


def test_a_journal_in_a_read_only_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(JournalError, match="cannot be written"):
            ExperimentsJournal(folder / "j.csv").check()
    finally:
        folder.chmod(0o755)


def test_a_folder_as_journal_is_refused(tmp_path):
    (tmp_path / "j.csv").mkdir()
    with pytest.raises(JournalError, match="is a folder"):
        ExperimentsJournal(tmp_path / "j.csv").check()


def test_a_full_disk_leaves_the_journal_unchanged_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "j.csv"
    ExperimentsJournal(path).append(record("a.yaml").row())
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(JournalError, match="No space left on device"):
        ExperimentsJournal(path).append(record("b.yaml").row())
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.csv", "j.csv.lock"]


@pytest.mark.parametrize("name", ["exp.yaml", "journal", "../j.csv", "/tmp/j.csv", ".csv", "a\0.csv", ""])
def test_journal_names_that_are_not_a_csv_next_to_the_experiment_are_refused(name):
    with pytest.raises(JournalError):
        check_journal_name(name)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

cells = st.text(alphabet=st.sampled_from('ab,"\n\r ;é'), max_size=6)
names = st.sampled_from(["config", "status", "seed", "error", "train_0:config", "notes", "x y"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(names, cells, min_size=1), min_size=1, max_size=4), st.sampled_from(["\n", "\r\n"]))
def test_any_appends_keep_the_bytes_of_every_earlier_row(rows, terminator):
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "j.csv"
        path.write_text(f",config,status{terminator}0,old.yaml,done{terminator}", newline="")
        for row in rows:
            before = path.read_bytes()
            header_end = before.index(terminator.encode()) + len(terminator)
            ExperimentsJournal(path).append({**row, "config": "new.yaml"})
            after = path.read_bytes()
            after_header_end = after.index(terminator.encode()) + len(terminator)
            assert after[:after_header_end - len(terminator)].startswith(before[:header_end - len(terminator)])
            assert after[after_header_end:].startswith(before[header_end:])
        frame = pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)
        assert len(frame) == len(rows) + 1 and frame["config"].iloc[0] == "old.yaml"
        for number, row in enumerate(rows, start=1):
            for column, value in row.items():
                if column != "config":
                    assert frame[column].iloc[number].replace("\r", "") == value.replace("\r", "")
