"""Build the distillation targets of the knowledge ladder (issue 25), and screen them without training.

    python tools/ladder_targets.py experiments/ladder_ml100k/            # every target the folder's runs read
    python tools/ladder_targets.py experiments/ladder_ml100k/ --screen docs/results/ladder/screening.md

The ladder asks what the distillation channel carries, by changing only its target (same model, layer, loss, width,
split and seed; experiments/ladder_ml100k/generate.py writes the experiments and ``ladder_targets.json``, which names
the target each experiment reads):

- ``template``: the template profile of each user (utils/profiles.py, from the training split), encoded by MiniLM;
- ``template_remapped``: the same template after a fixed random remapping of the item texts: each item gets
  another item's title, year and genres (a derangement drawn by the experiment's seed). The collaborative structure
  stays (an item keeps one consistent text), the world knowledge of the texts goes; (a) - (b) is its effect;
- ``svd_train``: interactions only, no text: a truncated SVD of the user's row of the *training* matrix;
- ``oracle_valid``: the ORACLE positive control: the mean MiniLM vector of the texts (title, year, genres) of the
  user's *validation* items, never the test items. It uses held-out information on purpose, to show whether the
  channel can carry a signal that helps at all; it is never a result about profiles.

For the item cold start (experiments/itemcold_ml100k/generate.py) it also writes ``item_text``: every item's MiniLM
vector of its title, year and genres (no interaction), in RecBole's item id order, which models/hybridneumf.py and
models/itemreference.py read (``item_text_file``).

Each target is built on the experiment's own split (its file is loaded, seeded and split exactly as run_exps.py
does, cold-start cut included) and written in RecBole's internal id order, one row per real user (the experiments
say ``users_start_with_1: true``), into the embeddings folder, where the experiment's ``reduce_dim`` reads it.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.errors import UserError  # noqa: E402

KINDS = ("template", "template_remapped", "svd_train", "oracle_valid", "item_text")
MANIFEST = "ladder_targets.json"
SVD_COMPONENTS = 64  # columns of the interaction-only target before the experiment's PCA to its width
SCREEN_K = 10


# --- pure pieces (tested on constructed splits) -------------------------------------------------------------------


def remap_items(items, seed):
    """Each item gets another item's title, year and genres: a derangement of the item table's entries, fixed by
    ``seed`` (utils.embeddings.derangement: one cycle, no item keeps its own text).

    Returns:
        (the remapped table {item: info}, {item: the item whose text it now carries})."""
    from utils.embeddings import derangement

    ids = sorted(items, key=lambda token: (len(token), token))
    order = derangement(len(ids), seed)
    donor = {item: ids[order[k]] for k, item in enumerate(ids)}
    return {item: dict(items[donor[item]]) for item in ids}, donor


def item_content_text(info):
    """What the world knows of an item, without any interaction: 'Title (year). Genres: a, b.'"""
    title = info.get("title") or "an untitled item"
    year = f" ({info['year']})" if info.get("year") else ""
    genres = ", ".join(info.get("genres") or []) or "unknown"
    return f"{title}{year}. Genres: {genres}."


def rows_matrix(users, items, shape):
    """A binary users x items matrix (scipy CSR) of the given interactions (internal ids)."""
    from scipy import sparse

    data = np.ones(len(users), dtype=np.float32)
    matrix = sparse.csr_matrix((data, (np.asarray(users), np.asarray(items))), shape=shape)
    matrix.data[:] = 1.0  # a pair seen twice counts once
    return matrix


def svd_target(train_users, train_items, shape, components=SVD_COMPONENTS, seed=0):
    """Interaction-only target from the TRAINING interactions alone: rows U * S of a truncated SVD of the binary
    training matrix, row 0 (padding) dropped.

    Args:
        train_users, train_items: internal ids of the training interactions (nothing else is accepted).
        shape: (user_num, item_num), padding ids included.

    Returns:
        numpy.ndarray: ``[user_num - 1, components]`` float32."""
    from sklearn.decomposition import TruncatedSVD

    matrix = rows_matrix(train_users, train_items, shape)
    components = min(components, min(shape) - 2)
    vectors = TruncatedSVD(n_components=components, random_state=seed).fit_transform(matrix)
    return np.asarray(vectors[1:], dtype=np.float32)


def oracle_target(valid_users, valid_items, item_vectors, user_num):
    """ORACLE positive control: each user's mean item-text vector over their VALIDATION items (the only
    interactions this function is given; never the test items).

    Args:
        valid_users, valid_items: internal ids of the validation interactions.
        item_vectors: ``[item_num, d]``, row = internal item id.
        user_num: users including the padding id 0.

    Returns:
        numpy.ndarray: ``[user_num - 1, d]`` float32.

    Raises:
        UserError: a user has no validation interaction (no oracle vector can be made for them)."""
    valid_users, valid_items = np.asarray(valid_users), np.asarray(valid_items)
    sums = np.zeros((user_num, item_vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, valid_users, item_vectors[valid_items])
    counts = np.bincount(valid_users, minlength=user_num)
    missing = np.flatnonzero(counts[1:] == 0) + 1
    if len(missing):
        raise UserError(f"oracle_valid: {len(missing)} users have no validation interaction (first: internal id "
                        f"{missing[0]})", "the oracle needs a validation split grouped by user (RS, group_by: user)")
    return (sums[1:] / counts[1:, None]).astype(np.float32)


def screen_ranking(user_vectors, item_vectors, train_pairs, heldout_pairs, k=SCREEN_K):
    """Rank every item for every user by cosine(profile vector, item-text vector), training items excluded, and
    score the held-out items: (hit@k, ndcg@k, users scored). No training involved.

    Args:
        user_vectors: ``[user_num, d]``, row = internal user id (row 0 unused).
        item_vectors: ``[item_num, d]``, row = internal item id (row 0, the padding item, never ranked).
        train_pairs, heldout_pairs: (users, items) arrays of internal ids."""
    users_v = user_vectors / np.maximum(np.linalg.norm(user_vectors, axis=1, keepdims=True), 1e-12)
    items_v = item_vectors / np.maximum(np.linalg.norm(item_vectors, axis=1, keepdims=True), 1e-12)
    held = {}
    for user, item in zip(*heldout_pairs, strict=True):
        held.setdefault(int(user), set()).add(int(item))
    seen = {}
    for user, item in zip(*train_pairs, strict=True):
        seen.setdefault(int(user), []).append(int(item))
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    hits, ndcgs = [], []
    for user, relevant in sorted(held.items()):
        scores = items_v @ users_v[user]
        scores[0] = -np.inf
        scores[seen.get(user, [])] = -np.inf
        top = np.argpartition(-scores, k)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        gains = np.array([item in relevant for item in top], dtype=float)
        ideal = discounts[:min(len(relevant), k)].sum()
        hits.append(gains.any())
        ndcgs.append((gains * discounts).sum() / ideal)
    return float(np.mean(hits)), float(np.mean(ndcgs)), len(hits)


# --- the experiment's own data ------------------------------------------------------------------------------------


def experiment_data(path):
    """(config, settings, data) of an experiment file, split exactly as run_exps.py splits it: the file checked,
    the seed set, the dataset built and split (with its cold-start cut)."""
    from recbole.utils import init_seed

    from utils.data import build_dataset, prepare_data
    from utils.experiment import check_experiment

    checked = check_experiment(path, outputs=False)
    settings, config = checked.settings, checked.config
    init_seed(config["seed"], config["reproducibility"])
    dataset = build_dataset(config)
    data = prepare_data(config, dataset, settings.add_train_split, settings.add_train_shuffle, settings.cold_start)
    return config, settings, data


def interactions(dataset):
    """(users, items) internal ids of a RecBole dataset split."""
    inter = dataset.inter_feat
    return inter[dataset.uid_field].numpy(), inter[dataset.iid_field].numpy()


class Encoder:
    """MiniLM with a memo of the texts it encoded in this run (a cold-start split re-encodes only the cut users)."""

    def __init__(self, device="cpu"):
        self.device = device
        self.memo = {}

    def __call__(self, texts):
        from utils.encoders import encode

        todo = sorted({t for t in texts if t not in self.memo})
        if todo:
            vectors = encode(todo, "minilm", progress=False, device=self.device)
            self.memo.update(zip(todo, vectors, strict=True))
        return np.stack([self.memo[t] for t in texts]).astype(np.float32)


def user_template_texts(config, data, items):
    """The template profile text of every user (RecBole id order) from the training split, with ``items`` as the
    item table (the real one, or a remapped one)."""
    from utils.profiles import (
        ProfileSpec,
        Rows,
        group_rows,
        training_history,
        user_facts,
        user_table,
        user_text,
        with_ratings,
    )

    fields = ProfileSpec(to="ladder.json").fields
    history = with_ratings(training_history(data), config, fields)
    users = user_table(config, fields)
    dataset = data.dataset
    ids = [str(t) for t in dataset.field2id_token[dataset.uid_field][1:]]
    groups = group_rows(history, "user")
    return [user_text(user_facts(u, groups.get(u, Rows()), users, items, fields), fields) for u in ids]


def item_vectors_for(config, data, items, encoder):
    """``[item_num, d]`` MiniLM vectors of the items' content texts (row = internal id; row 0 zeros)."""
    dataset = data.dataset
    tokens = [str(t) for t in dataset.field2id_token[dataset.iid_field][1:]]
    vectors = encoder([item_content_text(items.get(t, {})) for t in tokens])
    return np.vstack([np.zeros((1, vectors.shape[1]), dtype=np.float32), vectors])


def item_tables(config, seed):
    """(real item table, remapped item table) of the dataset."""
    from utils.profiles import ProfileSpec, item_table

    real = item_table(config, ProfileSpec(to="ladder.json").fields)
    if not real:
        raise UserError(f"{config['dataset']} has no item texts (no .item file with titles or genres)",
                        "the ladder's text targets need titles and genres")
    return real, remap_items(real, seed)[0]


def build_targets(config, data, kinds, encoder):
    """{kind: ``[user_num - 1, d]`` float32 (``item_text``: ``[item_num - 1, d]``)} for the experiment's split."""
    real, remapped = item_tables(config, config["seed"])
    dataset = data.dataset
    out = {}
    if "template" in kinds:
        out["template"] = encoder(user_template_texts(config, data, real))
    if "template_remapped" in kinds:
        out["template_remapped"] = encoder(user_template_texts(config, data, remapped))
    if "svd_train" in kinds:
        users, items = interactions(data.train_dataset)
        out["svd_train"] = svd_target(users, items, (dataset.user_num, dataset.item_num), seed=config["seed"])
    if "item_text" in kinds:
        out["item_text"] = item_vectors_for(config, data, real, encoder)[1:]
    if "oracle_valid" in kinds:
        users, items = interactions(data.valid.dataset)
        out["oracle_valid"] = oracle_target(users, items, item_vectors_for(config, data, real, encoder),
                                            dataset.user_num)
    return out


def read_manifest(folder):
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise UserError(f"no {MANIFEST} in {folder}",
                        "write the folder with experiments/ladder_ml100k/generate.py (it writes the manifest)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for name, entry in manifest.items():
        if entry.get("kind") not in KINDS:
            raise UserError(f"{path}: {name} asks for target kind {entry.get('kind')!r}",
                            f"kinds: {', '.join(KINDS)}")
    return manifest


def write_targets(folder, say=print):
    """Build and save every target the folder's manifest names, one data split per experiment group."""
    import torch

    from utils.embeddings import embeddings_dir, save_tensor

    folder = Path(folder)
    manifest = read_manifest(folder)
    groups = {}
    for name, entry in manifest.items():
        groups.setdefault(entry["split"], []).append((name, entry))
    encoder = Encoder()
    for split, entries in groups.items():
        config, settings, data = experiment_data(folder / entries[0][0])
        targets = build_targets(config, data, {entry["kind"] for _, entry in entries}, encoder)
        target_dir = embeddings_dir(settings.llm_config.embeddings_path, config["dataset"])
        target_dir.mkdir(parents=True, exist_ok=True)
        for _, entry in entries:
            matrix = torch.from_numpy(targets[entry["kind"]])
            save_tensor(matrix, target_dir / entry["to"])
            say(f"{split}: {entry['kind']} {tuple(matrix.shape)} -> {entry['to']}"
                + ("  (ORACLE: validation items)" if entry["kind"] == "oracle_valid" else ""))


def screen(folder, out, say=print):
    """Screening without training: rank items by cosine(template profile, item text) on each split of the folder,
    real texts against remapped ones (profiles and item texts from the same world), held-out = the validation
    items; writes a markdown table to ``out``."""
    manifest = read_manifest(folder)
    splits = {}
    for name, entry in manifest.items():
        splits.setdefault(entry["split"], name)
    encoder = Encoder()
    rows = []
    for split, name in splits.items():
        config, _, data = experiment_data(Path(folder) / name)
        real, remapped = item_tables(config, config["seed"])
        train, valid = interactions(data.train_dataset), interactions(data.valid.dataset)
        cold = np.array(sorted(data.cold_users), dtype=int)
        for world, items in (("real", real), ("remapped", remapped)):
            users = np.vstack([np.zeros((1, 384), np.float32), encoder(user_template_texts(config, data, items))])
            vectors = item_vectors_for(config, data, items, encoder)
            row = {"split": split, "texts": world}
            row["hit@10"], row["ndcg@10"], row["users"] = screen_ranking(users, vectors, train, valid)
            if len(cold):
                keep = np.isin(valid[0], cold)
                row["cold hit@10"], row["cold ndcg@10"], _ = screen_ranking(users, vectors, train,
                                                                            (valid[0][keep], valid[1][keep]))
            rows.append(row)
            say(f"{split} {world}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                 for k, v in row.items() if k not in ("split", "texts")))
    write_screening(rows, out)
    return rows


def _cell(value):
    if isinstance(value, float):
        return "n/a" if np.isnan(value) else f"{value:.4f}"
    return str(value)


def write_screening(rows, out):
    import pandas as pd

    frame = pd.DataFrame(rows)
    columns = list(frame.columns)
    lines = ["# Screening without training: template profile against item texts, real and remapped", "",
             "Every item ranked for every user by cosine(MiniLM vector of the user's template profile, MiniLM vector "
             "of the item's title, year and genres), training items excluded; scored on the user's validation "
             "items (the test split is never read). *real*: the dataset's item texts; *remapped*: each item "
             "carries another item's title, year and genres (a derangement fixed by the seed), in the profiles "
             "and the item texts alike, so only the world knowledge of the texts differs. Written by "
             "`tools/ladder_targets.py --screen`.", "",
             "| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="ladder_targets.py", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a folder written by experiments/ladder_ml100k/generate.py")
    parser.add_argument("--screen", metavar="OUT.md", help="screen the targets without training; write the table")
    args = parser.parse_args(argv)
    try:
        if args.screen:
            screen(args.folder, args.screen)
        else:
            write_targets(args.folder)
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
