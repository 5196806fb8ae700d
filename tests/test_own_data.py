"""Own data: raw CSV tables -> RecBole atomic files -> a scenario that trains on them; mistakes are one line."""

import json
import textwrap

import pandas as pd
import yaml
from helpers import EXPERIMENTS, ROOT, shrink

import make_dataset
import run_exps
from utils.profiles import ProfileFields, item_text_note

SHOP = ROOT / "tests" / "data" / "shop"
SHOP_ARGS = ["--name", "shop", "--inter", str(SHOP / "ratings.csv"), "--user-col", "customer", "--item-col", "product",
             "--rating-col", "stars", "--time-col", "date",
             "--users", str(SHOP / "customers.csv"), "--user-cols", "age,city",
             "--items", str(SHOP / "books.csv"), "--item-cols", "price:float",
             "--title-col", "title", "--genres-col", "genres", "--year-col", "year", "--noun", "book"]


def printed_experiment_lines(out):
    """The YAML block make_dataset prints for the experiment file, parsed."""
    block = out.split("Put these lines in an experiment file", 1)[1].split("\n", 1)[1]
    return yaml.safe_load(textwrap.dedent(block))


def test_the_raw_shop_tables_become_a_dataset_that_an_llmkt_scenario_trains_on(workdir, capsys):
    assert make_dataset.main([*SHOP_ARGS, "--out", "datasets"]) == 0
    out = capsys.readouterr().out
    inter = (workdir / "datasets" / "shop" / "shop.inter").read_text().splitlines()
    assert inter[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert len(inter) == 1 + len(pd.read_csv(SHOP / "ratings.csv"))
    item_header = (workdir / "datasets" / "shop" / "shop.item").read_text().splitlines()[0]
    assert item_header == "item_id:token\tprice:float\ttitle:token_seq\tgenres:token_seq\tyear:token"
    books = pd.read_csv(workdir / "datasets" / "shop" / "shop.item", sep="\t")
    assert set(" ".join(books["genres:token_seq"]).split()) <= {"Mystery", "Romance", "Science_Fiction", "History",
                                                                 "Poetry", "Cooking"}  # 'A|B' became 'A B'

    lines = printed_experiment_lines(out)
    assert lines["dataset"] == "shop" and lines["load_col"]["user"] == ["user_id", "age", "city"]
    base = yaml.safe_load((EXPERIMENTS / "neumf" / "neumf_ml100k.yaml").read_text())
    base.update(lines)  # as the README says: the printed lines pasted over the ready NeuMF scenario's own
    (workdir / "shop_neumf.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    path = shrink(workdir / "shop_neumf.yaml", workdir, extra={"user_inter_num_interval": None})

    assert run_exps.main([str(path)]) == 0
    run_out = capsys.readouterr().out
    assert "shop (60 users, 40 items, 1206 interactions" in run_out
    assert "has no item text" not in run_out
    (row,) = pd.read_csv(workdir / base["journal_name"], index_col=0).to_dict("records")
    assert row["status"] == "done" and row["dataset"] == "shop"
    assert "ndcg@10" in json.loads(row["train_1:best_test_res"])
    profiles = json.loads((workdir / "emb" / "shop" / "user_profiles_rs.json").read_text())
    assert len(profiles) == 60 and "books" in profiles[0]["description"]


def write_csv(path, text):
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: make_dataset: ")
    return err


def test_a_missing_column_is_one_line_with_the_nearest_name(tmp_path, capsys):
    ratings = write_csv(tmp_path / "r.csv", """
        user,item,rating
        u1,i1,4
    """)
    args = ["--name", "x", "--out", str(tmp_path), "--inter", ratings, "--user-col", "user", "--item-col", "item",
            "--rating-col", "ratings"]
    assert make_dataset.main(args) == 2
    line = one_error_line(capsys)
    assert "r.csv: no column 'ratings'" in line and "did you mean 'rating'" in line


def test_a_rating_that_is_not_a_number_is_one_line_naming_row_and_value(tmp_path, capsys):
    ratings = write_csv(tmp_path / "r.csv", """
        user,item,rating
        u1,i1,4
        u1,i2,five
    """)
    args = ["--name", "x", "--out", str(tmp_path), "--inter", ratings, "--user-col", "user", "--item-col", "item",
            "--rating-col", "rating"]
    assert make_dataset.main(args) == 2
    assert "rating column 'rating', row 3: 'five' is not a finite number" in one_error_line(capsys)
    assert not (tmp_path / "x").exists()


def test_a_duplicated_user_id_is_one_line(tmp_path, capsys):
    ratings = write_csv(tmp_path / "r.csv", """
        user,item
        u1,i1
    """)
    users = write_csv(tmp_path / "u.csv", """
        user,age
        u1,30
        u2,41
        u1,30
    """)
    args = ["--name", "x", "--out", str(tmp_path), "--inter", ratings, "--user-col", "user", "--item-col", "item",
            "--users", users, "--user-cols", "age"]
    assert make_dataset.main(args) == 2
    assert "u.csv: user id 'u1' appears 2 times" in one_error_line(capsys)


def test_parquet_is_refused_in_one_line_saying_what_to_do(tmp_path, capsys):
    (tmp_path / "r.parquet").write_bytes(b"PAR1")
    args = ["--name", "x", "--out", str(tmp_path), "--inter", str(tmp_path / "r.parquet"), "--user-col", "u",
            "--item-col", "i"]
    assert make_dataset.main(args) == 2
    assert "Parquet is not supported" in one_error_line(capsys)


def test_existing_files_are_kept_unless_forced(tmp_path, capsys):
    args = [*SHOP_ARGS, "--out", str(tmp_path)]
    assert make_dataset.main(args) == 0
    assert make_dataset.main(args) == 2
    assert "shop.inter exists (hint: give --force" in one_error_line(capsys)
    assert make_dataset.main([*args, "--force"]) == 0


def test_profiles_of_a_dataset_without_item_text_say_so_in_one_line(tmp_path, capsys):
    ratings = write_csv(tmp_path / "r.csv", """
        user,item,rating
        u1,i1,4
    """)
    assert make_dataset.main(["--name", "cds", "--out", str(tmp_path), "--inter", ratings, "--user-col", "user",
                              "--item-col", "item", "--rating-col", "rating"]) == 0
    config = {"data_path": str(tmp_path / "cds"), "dataset": "cds"}
    note = item_text_note(config, ProfileFields(noun="CD"))
    assert note.startswith("profiles: cds has no item text (no cds.item): profiles name CDs by id")
    items = write_csv(tmp_path / "i.csv", """
        item,title
        i1,Blue Train
    """)
    assert make_dataset.main(["--name", "cds", "--out", str(tmp_path), "--items", items, "--item-id-col", "item",
                              "--title-col", "title"]) == 0
    assert item_text_note(config, ProfileFields(title="title")) is None


def test_item_metadata_for_a_dataset_recbole_has_not_downloaded_yet_is_refused_in_one_line(tmp_path, capsys):
    items = write_csv(tmp_path / "meta.csv", """
        asin,title
        B001,Kind of Blue
    """)
    args = ["--name", "amazon-cds-vinyl", "--out", str(tmp_path), "--items", items, "--item-id-col", "asin",
            "--title-col", "title"]
    assert make_dataset.main(args) == 2
    assert "amazon-cds-vinyl.inter does not exist" in one_error_line(capsys)
    assert not (tmp_path / "amazon-cds-vinyl").exists()  # a folder there would stop RecBole's download
