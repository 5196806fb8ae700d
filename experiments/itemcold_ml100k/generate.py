"""Write the fair item cold start of ml-100k (issue 25): item text entering NeuMF's score directly.

    python experiments/itemcold_ml100k/generate.py          # experiments/itemcold_k{0,2}_{all,sparse}_ml100k/
    python tools/ladder_targets.py experiments/itemcold_k0_all_ml100k/    # the item text vectors, once
    for f in k0_all k0_sparse k2_all k2_sparse; do
      python run_exps.py experiments/itemcold_${f}_ml100k/ --workers 2
    done
    python report.py experiments/itemcold_k{0,2}_all_ml100k/ --curves none --out docs/results/itemcold/all
    python report.py experiments/itemcold_k{0,2}_sparse_ml100k/ --curves none --out docs/results/itemcold/sparse

The cold-start study's item side (experiments/audit_ml100k/generate.py --cold-start K --items: a seeded fifth of
the items keep K training interactions; validation and test untouched; cold items scored on their own test
interactions, ``cold_items:ndcg@10`` and ``cold_items:recall@100``), with K = 0 (items never seen in training) and
K = 2, and item text that reaches both of NeuMF's item towers (models/hybridneumf.py):

- *baseline*: HybridNeuMF with ``item_text_mode: none``, i.e. NeuMF;
- *ridge*: the same training; items with fewer than ``text_min_count`` training interactions (K + 1: the cold ones
  and the naturally rare) take a ridge map from their text to the learned embeddings of both towers, fitted on
  the items with at least 10;
- *hybrid*: id embedding + projected text in both towers, trained with id dropout 0.5; the same items score from
  their text alone;
- reference rows (models/itemreference.py): *pop* (training popularity) and *content_knn* (cosine between the
  item's text and the mean text of the user's training items).

Two candidate sets, one folder each: *all* ranks the cold items among all items; *sparse* ranks them among the items
with at most K training interactions only (with K = 0 exactly the cold items; with K = 2 the cold items and the
naturally rare ones).
"""

import argparse
import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import yaml

HERE = Path(__file__).resolve().parent


def _load_audit():
    """experiments/audit_ml100k/generate.py's names (the experiments folder is no package)."""
    return SimpleNamespace(**runpy.run_path(str(HERE.parent / "audit_ml100k" / "generate.py")))


audit = _load_audit()
bench = audit.bench

KS = (0, 2)
CANDIDATES = ("all", "sparse")
SEEDS = tuple(audit.SEEDS)
ITEM_TEXT = "ladder_item_text.pt"
ITEM_TEXT_FILE = f"datasets/llm_embeddings/ml-100k/{ITEM_TEXT}"  # relative to the repository root, run from there
VARIANTS = {  # variant -> (model, its settings)
    "baseline": ("HybridNeuMF", {"item_text_mode": "none"}),
    "ridge": ("HybridNeuMF", {"item_text_mode": "ridge", "ridge_fit_count": 10, "ridge_alpha": 1.0}),
    "hybrid": ("HybridNeuMF", {"item_text_mode": "hybrid", "id_dropout": 0.5}),
    "pop": ("ItemReference", {"item_reference": "pop"}),
    "content_knn": ("ItemReference", {"item_reference": "content_knn"}),
}


def folder_of(k, candidates, root=HERE.parent):
    return root / f"itemcold_k{k}_{candidates}_ml100k"


def scenario(model, variant):
    """NeuMF's two phases trained to convergence (the audit's); the reference models fill their counts in one
    epoch."""
    if model == "ItemReference":
        return [{"set": {"train_part": 0, "variant": variant}}, {"init_model": None}, {"set_config": {"epochs": 1}},
                {"init_trainer": None}, {"train": None}, {"test_eval": None}]
    first, second = audit.MAX_EPOCHS["NeuMF"]
    return [{"set": {"train_part": 0, "variant": variant}}, {"init_model": None}, {"set_config": {"epochs": first}},
            {"init_trainer": None}, {"train": None}, {"test_eval": None}, {"set": {"train_part": 1}},
            {"set_config": {"epochs": second}}, {"init_trainer": None},
            {"load_from_file": {"file": "best", "resume": False}}, {"train": None}, {"test_eval": None}]


def experiment(variant, seed, k, candidates):
    model, extra = VARIANTS[variant]
    neumf = model == "HybridNeuMF"
    settings = {
        "logger_level": "WARNING",
        "journal_name": f"itemcold_k{k}_{candidates}_journal.csv",
        **bench.COMMON,
        "stopping_step": audit.STOPPING_STEP,
        "model": model,
        "seed": seed,
        **(bench.MODELS["NeuMF"]["recbole"] if neumf else {"train_batch_size": 2048}),
        **({"neumf_full_sort": "parts"} if neumf else {}),
        **extra,
        **({"text_min_count": k + 1} if neumf else {}),  # the cold items (and the naturally rare) use their text
        "candidate_items": candidates,
        "candidate_max_count": k,
        "scenario": scenario(model, variant),
        "cold_start": {"items": audit.COLD_SHARE, "k": k},
    }
    if variant in ("ridge", "hybrid", "content_knn"):
        settings["item_text_file"] = ITEM_TEXT_FILE
    header = (f"# {model} on ml-100k, item cold start k={k}, {variant}, candidates {candidates}, seed {seed}: "
              "written by experiments/itemcold_ml100k/generate.py; edit that script, not this file.\n")
    return header + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=110)


def write(folder, k, candidates, seeds=SEEDS):
    """One folder: the variants x seeds, seed first; its manifest names the item text vectors the runs read."""
    for seed in seeds:
        for variant in VARIANTS:
            (folder / f"s{seed}_{variant}.yaml").write_text(experiment(variant, seed, k, candidates))
    first = f"s{seeds[0]}_baseline.yaml"
    manifest = {first: {"kind": "item_text", "to": ITEM_TEXT, "split": "items"}}
    (folder / "ladder_targets.json").write_text(json.dumps(manifest, indent=1) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", nargs="+", type=int, choices=KS, default=list(KS))
    parser.add_argument("--candidates", nargs="+", choices=CANDIDATES, default=list(CANDIDATES))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--out", type=Path, help="write the folders under this folder instead")
    args = parser.parse_args()
    for k in args.ks:
        for candidates in args.candidates:
            folder = folder_of(k, candidates, args.out) if args.out else folder_of(k, candidates)
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("*.yaml"):
                old.unlink()
            write(folder, k, candidates, args.seeds)
            print(f"wrote {len(list(folder.glob('*.yaml')))} experiments to {folder}")


if __name__ == "__main__":
    main()
