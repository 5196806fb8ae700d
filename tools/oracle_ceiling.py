"""Is the ladder's information there at all? Add a target's text score straight to a trained baseline's scores
(no distillation), and compare with what the distillation channel made of the same target (issue 25).

    python tools/oracle_ceiling.py experiments/ladder_neumf_ml100k/ --out docs/results/ladder/ceiling

The ladder's positive control (``oracle_valid``: the mean MiniLM vector of a user's validation items' texts) did
not raise test NDCG@10 when distilled. Two explanations differ in what they predict here:

- the target holds nothing the ranking can use: then adding its score to the baseline's scores does not help either;
- the target holds it but the channel does not carry it: then the added score helps where distillation did not.

For every finished ``baseline`` run of the folder's journal, this loads its best checkpoint of the last part, scores
every item for every user (the experiment's own split, rebuilt as run_exps.py builds it), and ranks by
``z(model score) + lambda * z(cosine(target_u, item text_i))`` (z: standardised over the user's candidates), for
each target of the ladder (its raw vectors, as ``tools/ladder_targets.py`` wrote them) and each lambda of a fixed
grid. It scores validation items (training items excluded) and test items (training and validation items excluded,
as RecBole's full ranking does). lambda = 0 is the baseline itself: its test NDCG@10 must equal the journal's, which
the report checks. The template and remapped targets are paired with the item texts of their own world.

The report gives, per target and lambda, the per-seed relative change against lambda = 0 (95 % t-interval, t-test
p, Holm over the report's test rows), and next to it the distilled run of the same target against the baseline
(from the journal), on validation and test. Nothing is tuned on test: the grid is fixed and every point is shown.
The oracle's validation rows read the very items its target encodes: they show the information is present, not a
result. The test rows never read anything the target was built from.
"""

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from utils.errors import UserError  # noqa: E402

LAMBDAS = (0.0, 0.1, 0.25, 0.5, 1.0)
TARGETS = ("oracle_valid", "template", "template_remapped")
K = 10


# --- pure pieces (tested on constructed arrays) --------------------------------------------------------------------


def standardise(scores, mask):
    """Scores standardised per row over the candidates (``mask`` True = excluded), excluded entries 0."""
    scores = np.where(mask, np.nan, scores.astype(np.float64))
    mean = np.nanmean(scores, axis=1, keepdims=True)
    std = np.nanstd(scores, axis=1, keepdims=True)
    return np.where(mask, 0.0, (scores - mean) / np.where(std > 0, std, 1.0))


def fused(model_z, content_z, mask, lam):
    """``model_z + lam * content_z`` (both standardised over the same candidates); excluded entries -inf."""
    return np.where(mask, -np.inf, model_z + lam * content_z)


def ndcg_at_k(scores, relevant, k=K):
    """Per-row NDCG@k (binary relevance, ideal DCG over min(|relevant|, k)), RecBole's definition; rows without a
    relevant item are nan.

    Args:
        scores: ``[users, items]``, excluded items -inf.
        relevant: boolean ``[users, items]``, True for a held-out item of the row."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1, kind="stable")[:, ::-1]
    gains = np.take_along_axis(relevant, np.take_along_axis(top, order, axis=1), axis=1)
    ideal = np.cumsum(discounts)[np.minimum(relevant.sum(axis=1), k) - 1]
    with np.errstate(invalid="ignore"):
        return np.where(relevant.any(axis=1), (gains * discounts).sum(axis=1) / ideal, math.nan)


def cosine(users, items):
    """``[users, items]`` cosine similarities."""
    users = users / np.maximum(np.linalg.norm(users, axis=1, keepdims=True), 1e-12)
    items = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    return users @ items.T


# --- one seed ------------------------------------------------------------------------------------------------------


def model_scores(config, data, checkpoint):
    """``[user_num, item_num]`` full-ranking scores of the checkpoint's model on its split (row/column 0 padding)."""
    import torch
    from recbole.data.interaction import Interaction

    from utils.registry import get_model_class
    from utils.trainer import load_checkpoint

    model = get_model_class(config["model"])(config, data.train_dataset)
    model.load_state_dict(load_checkpoint(checkpoint)["state_dict"])
    model.eval()
    dataset = data.dataset
    users = torch.arange(dataset.user_num)
    with torch.no_grad():
        scores = model.full_sort_predict(Interaction({dataset.uid_field: users}))
    return scores.view(dataset.user_num, dataset.item_num).numpy()


def held(split, shape):
    """Boolean ``[user_num, item_num]``: True where the user has the item in the RecBole dataset split."""
    from ladder_targets import interactions, rows_matrix

    return rows_matrix(*interactions(split), shape).toarray() > 0


def seed_ceiling(path, checkpoint, targets, encoder, lambdas=LAMBDAS):
    """{(target, lambda): {'valid': mean NDCG@10, 'test': ...}} for one baseline run; also ('model', 0.0).

    Args:
        targets: {kind: file name in the experiment's embeddings folder}."""
    import torch
    from ladder_targets import experiment_data, item_tables, item_vectors_for

    from utils.embeddings import embeddings_dir

    config, settings, data = experiment_data(path)
    where = embeddings_dir(settings.llm_config.embeddings_path, config["dataset"])
    dataset = data.dataset
    shape = (dataset.user_num, dataset.item_num)
    scores = model_scores(config, data, checkpoint)
    train, valid, test = (held(s, shape) for s in (data.train_dataset, data.valid.dataset, data.test.dataset))
    train[:, 0] = True  # the padding item is never ranked
    masks = {"valid": train, "test": train | valid}  # RecBole's full ranking: seen items excluded
    relevant = {"valid": valid, "test": test}
    model_z = {split: standardise(scores, mask) for split, mask in masks.items()}
    real, remapped = item_tables(config, config["seed"])
    worlds = {"real": item_vectors_for(config, data, real, encoder),
              "remapped": item_vectors_for(config, data, remapped, encoder)}
    out = {}
    for name, file in targets.items():
        matrix = torch.load(where / file, map_location="cpu", weights_only=True).numpy()
        users = np.vstack([np.zeros((1, matrix.shape[1]), np.float32), matrix])  # row 0: the padding user
        content = cosine(users, worlds["remapped" if name == "template_remapped" else "real"])
        content_z = {split: standardise(content, mask) for split, mask in masks.items()}
        for lam in lambdas:
            key = ("model", 0.0) if lam == 0 else (name, lam)
            if key not in out:
                out[key] = {split: float(np.nanmean(ndcg_at_k(
                    fused(model_z[split], content_z[split], masks[split], lam)[1:], relevant[split][1:])))
                    for split in masks}
    return out


# --- the folder ----------------------------------------------------------------------------------------------------


def journal_runs(folder):
    """{(seed, variant): row} of the folder's journal's finished runs (the last per experiment)."""
    import report

    runs = {}
    for journal in report.find_journals(folder):
        frame = report.read_journal(journal)
        for _, row in frame.iterrows():
            if row.get("status", "done") in ("done", ""):
                runs[(int(float(row.get("seed"))), str(row.get("variant")))] = row
    return runs


def last_part(row, key):
    """The journal cell ``train_<last part>:<key>`` of a row, or None when empty."""
    import report

    parts = report._parts(row)
    cell = row.get(f"train_{parts[-1]}:{key}") if parts else None
    return cell if isinstance(cell, str) and cell else None


def ceiling(folder, say=print):
    """Per-seed rows: seed, target, lambda, valid, test (NDCG@10), and the journal's numbers of the same seed."""
    from ladder_targets import Encoder, read_manifest

    folder = Path(folder)
    manifest = read_manifest(folder)
    runs = journal_runs(folder)
    encoder = Encoder()
    rows = []
    for (seed, variant), row in sorted(runs.items()):
        if variant != "baseline":
            continue
        name = Path(row["config"]).name
        checkpoint = last_part(row, "bestmodel_file")
        if not checkpoint or not Path(checkpoint).is_file():
            say(f"seed {seed}: no checkpoint of {name} on disk, skipped")
            continue
        prefix = name.removesuffix(".yaml").removesuffix("_baseline") + "_"  # neumf_all_s01_: this seed's runs
        targets = {e["kind"]: e["to"] for n, e in manifest.items() if n.startswith(prefix) and e["kind"] in TARGETS}
        result = seed_ceiling(folder / name, checkpoint, targets, encoder)
        journal = {v: {key: json.loads(last_part(runs[(seed, v)], key) or "{}").get("ndcg@10")
                       for key in ("best_val_res", "best_test_res")}
                   for v in ("baseline", *TARGETS) if (seed, v) in runs}
        for (target, lam), values in result.items():
            rows.append({"seed": seed, "target": target, "lam": lam, **values})
        for variant_name, values in journal.items():
            rows.append({"seed": seed, "target": f"distilled:{variant_name}", "lam": math.nan,
                         "valid": values["best_val_res"], "test": values["best_test_res"]})
        say(f"seed {seed}: model test NDCG@10 {result[('model', 0.0)]['test']:.4f} (journal "
            f"{journal['baseline']['best_test_res']}); oracle lambda 0.25 test "
            f"{result.get(('oracle_valid', 0.25), {}).get('test', math.nan):.4f}")
    if not rows:
        raise UserError(f"no finished baseline run with its checkpoint on disk in {folder}",
                        "run the folder's baseline experiments first (run_exps.py); checkpoints are in saved/")
    return rows


def summarise(rows):
    """(per-seed frame, statistics frame): every (target, lambda) against lambda 0 (the model), and every distilled
    target against the distilled baseline, per split; Holm over the test rows and over the validation rows."""
    import pandas as pd

    from utils.stats import holm, paired_change

    frame = pd.DataFrame(rows)
    stats = []
    model = frame[frame["target"] == "model"].set_index("seed")
    base = frame[frame["target"] == "distilled:baseline"].set_index("seed")
    for (target, lam), group in frame.groupby(["target", "lam"], dropna=False, sort=False):
        reference = base if str(target).startswith("distilled:") else model
        if target in ("model", "distilled:baseline"):
            continue
        group = group.set_index("seed")
        seeds = sorted(set(group.index) & set(reference.index))
        for split in ("valid", "test"):
            change = paired_change(group.loc[seeds, split].astype(float).to_numpy(),
                                   reference.loc[seeds, split].astype(float).to_numpy())
            stats.append({"split": split, "how": "distilled" if str(target).startswith("distilled:") else "added",
                          "target": str(target).removeprefix("distilled:"), "lam": lam, **vars(change)})
    stats = pd.DataFrame(stats)
    stats["holm"] = math.nan
    for split in ("valid", "test"):
        index = stats.index[stats["split"] == split]
        stats.loc[index, "holm"] = holm(stats.loc[index, "p"].to_numpy())
    return frame, stats


def render(frame, stats):
    import pandas as pd

    from report import p_text

    def pct(value):
        return "n/a" if pd.isna(value) else f"{value:+.1%}"

    model = frame[frame["target"] == "model"].sort_values("seed")
    journal = frame[frame["target"] == "distilled:baseline"].set_index("seed")
    checks = [f"| {int(r.seed)} | {r.test:.4f} | {journal.loc[r.seed, 'test'] if r.seed in journal.index else 'n/a'} |"
              for r in model.itertuples()]
    lines = ["# Is the ladder's information there? Target scores added to the baseline's, against distillation", "",
             "Written by `tools/oracle_ceiling.py` (its docstring says how). *added*: "
             "z(baseline score) + lambda * z(cosine(target, item text)) on the trained baseline, no training; "
             "*distilled*: the ladder's run with that target against its baseline (the journal). Per-seed relative "
             "change of NDCG@10, 95 % t-interval, t-test p; Holm over each split's rows. **The oracle's validation "
             "rows score the items its target is built from**: they show the information is present, nothing more.",
             "", "Check: lambda = 0 re-scores the journaled baseline checkpoint; its test NDCG@10 against the "
             "journal's:", "", "| seed | re-scored | journal |", "|---|---|---|", *checks, ""]
    for split in ("test", "valid"):
        part = stats[stats["split"] == split]
        lines += [f"## {split.capitalize()} NDCG@10", "",
                  "| how | target | lambda | seeds | mean change | 95 % interval | p | Holm p | detectable |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in part.itertuples():
            lam = "" if pd.isna(r.lam) else f"{r.lam:g}"
            lines.append(f"| {r.how} | {r.target} | {lam} | {r.n} | {pct(r.mean)} | {pct(r.low)} to {pct(r.high)} "
                         f"| {p_text(r.p)} | {p_text(r.holm)} | {'n/a' if pd.isna(r.mde) else f'±{r.mde:.1%}'} |")
        lines.append("")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="oracle_ceiling.py", description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="a ladder folder (experiments/ladder_ml100k/generate.py) whose runs finished")
    parser.add_argument("--out", help="folder for ceiling.md and ceiling_runs.csv")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        frame, stats = summarise(ceiling(args.folder))
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return 2
    lines = render(frame, stats)
    print("\n".join(lines))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "ceiling.md").write_text("\n".join(lines), encoding="utf-8")
        frame.to_csv(out / "ceiling_runs.csv", index=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
