"""The journal: spec columns, one row per run, earlier rows kept, readable by pandas."""

import json

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
