"""Turn your own tables (CSV or TSV) into a RecBole dataset and print the lines for an experiment file.

    python make_dataset.py --name shop --inter ratings.csv --user-col customer --item-col product \\
        [--rating-col stars] [--time-col date] \\
        [--users customers.csv --user-id-col customer --user-cols age,city] \\
        [--items products.csv --item-id-col product --item-cols title,genres:token_seq,price:float] \\
        [--title-col title] [--genres-col genres] [--noun book] [--out datasets] [--force]

Writes ``<out>/<name>/<name>.inter`` (and ``.user``, ``.item``) with typed headers, after checking the tables:
a missing column, a duplicated user or item id, an empty id or a rating that is not a number stop it with one
line and exit status 2. Without --inter, only the user / item files are written (e.g. item metadata for a dataset
RecBole downloaded). A column type (token, float, token_seq) is guessed when not given after a colon.
"""

import argparse
import sys

from utils.errors import UserError


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="dataset name (the 'dataset:' of experiment files)")
    parser.add_argument("--out", default="datasets", help="the data_path folder (default: datasets)")
    parser.add_argument("--sep", default=None, help="column separator (default: tab for .tsv, else comma)")
    parser.add_argument("--force", action="store_true", help="overwrite existing atomic files")
    inter = parser.add_argument_group("interactions")
    inter.add_argument("--inter", help="the interactions table: one row per (user, item) event")
    inter.add_argument("--user-col", help="its user id column")
    inter.add_argument("--item-col", help="its item id column")
    inter.add_argument("--rating-col", help="its rating column (numbers), if any")
    inter.add_argument("--time-col", help="its time column (seconds or dates), if any")
    users = parser.add_argument_group("users (optional)")
    users.add_argument("--users", help="the user table: one row per user")
    users.add_argument("--user-id-col", help="its id column (default: --user-col)")
    users.add_argument("--user-cols", default="", help="feature columns, e.g. 'age,city:token'")
    items = parser.add_argument_group("items (optional)")
    items.add_argument("--items", help="the item table: one row per item")
    items.add_argument("--item-id-col", help="its id column (default: --item-col)")
    items.add_argument("--item-cols", default="", help="feature columns, e.g. 'title,genres:token_seq,price:float'")
    items.add_argument("--list-sep", default="|", help="separator inside list columns such as genres (default |)")
    profile = parser.add_argument_group("what profiles read (printed into the experiment lines)")
    profile.add_argument("--title-col", help="the item column holding the title")
    profile.add_argument("--genres-col", help="the item column holding genres or categories")
    profile.add_argument("--year-col", help="the item column holding a year")
    profile.add_argument("--noun", help="what an item is called in profiles (default: item)")
    return parser.parse_args(argv)


def build(args):
    from utils import own_data

    tables = []
    if not args.list_sep:
        raise UserError("--list-sep '' would split every list cell into single characters",
                        "give the separator inside list columns, e.g. --list-sep '|'")
    for entity, table, columns in (("user", args.users, args.user_cols), ("item", args.items, args.item_cols)):
        if columns and not table:
            raise UserError(f"--{entity}-cols {columns!r} without --{entity}s: those columns would be dropped",
                            f"give the {entity} table with --{entity}s, or leave out --{entity}-cols")
    if args.inter:
        if not args.user_col or not args.item_col:
            raise UserError("--inter needs --user-col and --item-col", "name the id columns of the table")
        tables.append(own_data.interactions(args.inter, args.user_col, args.item_col, args.rating_col,
                                            args.time_col, args.sep))
    for entity, path, id_col, default, columns in (("user", args.users, args.user_id_col, args.user_col,
                                                   args.user_cols),
                                                  ("item", args.items, args.item_id_col, args.item_col,
                                                   args.item_cols)):
        if not path:
            continue
        if not (id_col or default):
            raise UserError(f"--{entity}s needs --{entity}-id-col", f"name the id column of the {entity} table")
        wanted = own_data.parse_columns(columns, f"--{entity}-cols")
        if entity == "item":
            for extra in (args.title_col, args.genres_col, args.year_col):
                if extra:
                    wanted.setdefault(extra, "token_seq" if extra != args.year_col else "token")
        tables.append(own_data.features(path, entity, id_col or default, wanted, args.list_sep, args.sep))
    if not tables:
        raise UserError("nothing to convert", "give --inter (and optionally --users, --items)")
    paths = own_data.write_tables(args.out, args.name, tables, force=args.force)
    return own_data, tables, paths


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        own_data, tables, paths = build(args)
    except UserError as exc:
        print(f"error: make_dataset: {exc.line()}", file=sys.stderr)
        return 2
    for table, path in zip(tables, paths, strict=True):
        columns = ", ".join(f"{c}:{k}" for c, k in table.types.items())
        print(f"wrote {path}: {len(table.frame)} rows ({columns})")
    inter = next((t.frame for t in tables if t.suffix == "inter"), None)
    if inter is not None:
        print(f"{inter['user_id'].nunique()} users, {inter['item_id'].nunique()} items, {len(inter)} interactions")
    fields = {"title": args.title_col, "genres": args.genres_col, "year": args.year_col, "noun": args.noun}
    print("\nPut these lines in an experiment file (e.g. a copy of experiments/neumf/neumf_ml100k.yaml):\n")
    print("\n".join(own_data.experiment_lines(args.name, args.out, tables, fields)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
