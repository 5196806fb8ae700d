"""Write the protocol audit of ml-100k (issue 15: is the gain real?) as one YAML per experiment.

    python experiments/audit_ml100k/generate.py              # MODELS x VARIANTS x seeds 1-5
    python experiments/audit_ml100k/generate.py --tuning     # experiments/audit_tuning_ml100k/: the baseline's own
                                                             # learning rate and weight decay, validation only
    python experiments/audit_ml100k/generate.py --cold-start 5             # experiments/audit_cold5_ml100k/
    python experiments/audit_ml100k/generate.py --cold-start 5 --items     # experiments/audit_cold5_items_ml100k/

The models, their RecBole settings, the split and the distillation chosen on validation are the benchmark's
(imported from experiments/benchmark_ml100k/generate.py, never copied). What the audit changes:

- variants: *baseline*, *llmkt* (profiles from the training split), *leaky* (the same profiles written from every
  interaction, validation and test included: what leakage would add) and *shuffled* (the real profiles, each given
  to another user: the right distribution, the wrong person), all with the same two phases;
- training to convergence: the same generous maximum of epochs per phase for every variant (MAX_EPOCHS) and early
  stopping on validation NDCG@10 (RecBole's ``stopping_step``); the journal says how many epochs ran and which was
  the best (``train_k:epochs_run``, ``train_k:best_epoch``);
- two protocols from one training run: full ranking (the experiments' own) and uni100 (``uni100:ndcg@10``, ...).

The cold-start study (``--cold-start K``) cuts the training history of a fifth of the users (``--items``: of the
items) to K interactions, drawn by seed, and compares the baseline with LLM-KT on train-only profiles written from
what remains (COLD_MODELS, COLD_VARIANTS). User profiles add the user's demographics; item profiles (title, year,
genres, the training ratings left) are distilled into NeuMF's item embedding (ITEM_DISTIL). report.py shows the
cold users (the ``cold_items:`` metrics) apart.
"""

import argparse
import runpy
from pathlib import Path
from types import SimpleNamespace

import yaml

HERE = Path(__file__).resolve().parent


def _load_benchmark():
    """experiments/benchmark_ml100k/generate.py's names (the experiments folder is no package)."""
    return SimpleNamespace(**runpy.run_path(str(HERE.parent / "benchmark_ml100k" / "generate.py")))


bench = _load_benchmark()

SEEDS = bench.SEEDS
TUNING_SEEDS = bench.TUNING_SEEDS  # never the audit's seeds, hence never its test splits
VARIANTS = ("baseline", "llmkt", "leaky", "shuffled")
MAX_EPOCHS = {"NeuMF": (100, 100), "SimpleX": (100, 100), "MultiVAE": (200, 200)}  # per phase, every variant
STOPPING_STEP = 10  # epochs without a better validation NDCG@10 before a phase stops
SECOND_PROTOCOL = {"mode": "uni100"}  # journaled as uni100:<metric> next to the full-ranking metrics

# The baseline's own sweep gets as many settings as LLM-KT's distillation got in experiments/tuning_ml100k
# (len(bench.TUNING[model]): NeuMF 10, SimpleX 3, MultiVAE 3), besides the default (learning_rate 0.001, no weight
# decay). (learning_rate, weight_decay), most informative first; each model takes the first N.
BASELINE_GRID = [(0.002, 0.0), (0.0005, 0.0), (0.001, 1e-5), (0.005, 0.0), (0.001, 1e-6), (0.001, 1e-4),
                 (0.002, 1e-6), (0.002, 1e-5), (0.005, 1e-6), (0.0005, 1e-6)]
# Fill in after the sweep (best mean validation NDCG@10 per model): the audit then adds a 'baseline_tuned' variant
# with these settings, e.g. {"NeuMF": {"learning_rate": 0.002, "weight_decay": 1e-6}}.
BASELINE_TUNED = {}


COLD_SHARE = 0.2  # of the users (items) whose training history is cut to k
COLD_MODELS = {"users": ("NeuMF", "SimpleX"), "items": ("NeuMF",)}
COLD_VARIANTS = ("baseline", "llmkt", "llmkt_allrows")
# Item side: NeuMF's GMF item embedding reconstructs the item's profile, encoded by MiniLM (what the encoder knows
# of a title is knowledge the item ids lack), reduced to 32 columns as the user side is; one row per interaction.
# The cold-start study scores NeuMF's full ranking with models/neumf.py's factorised scorer: the same scores up to
# float rounding, about five times faster than RecBole's pair-by-pair scoring, which took 80 % of each epoch here.
COLD_RECBOLE = {"NeuMF": {"neumf_full_sort": "parts"}}
ITEM_DISTIL = {"loss": "HiddenDistil", "layer": "item_mf_embedding", "width": 32, "alpha": 0.5, "profiles": "minilm",
               "params": {"entity": "item", "rows": "batch", "distance": "cosine"}}
# llmkt_allrows: the same profiles, layer and distance, but every row of the embedding table meets its profile in
# every batch (HiddenDistil rows: all), instead of one row per interaction: a cold user (item) with k interactions
# is otherwise pulled k / (a median entity's count) as often. NeuMF only (SimpleX's distilled layer is no table).
ALLROWS_K = (2,)  # the coldest setting only: at k = 2 a cold entity is pulled least by the per-interaction loss
ALLROWS_DISTIL = {
    "users": {**bench.MODELS["NeuMF"]["distil"], "loss": "HiddenDistil",  # NeumfUserCosine, but every row
              "params": {"entity": "user", "rows": "all", "distance": "cosine"}},
    "items": {**ITEM_DISTIL, "params": {**ITEM_DISTIL["params"], "rows": "all"}},
}


def profile_kind(model):
    return bench.MODELS[model]["distil"].get("profiles", "minilm")


def profiles_config(model, seed, variant, cold=""):
    """llm_config of a variant: llmkt's profiles; leaky ones (history: all) under their own names; or llmkt's
    profiles shuffled among users into their own matrix. ``cold`` suffixes every file name of a cold-start run."""
    kind = profile_kind(model)
    config = bench.profiles_config(seed, kind)
    build, convert = config["build_profiles"], config["preprocess_from_json"]
    if variant == "leaky":
        build["history"] = "all"
        build["to"] = convert["from"] = build["to"].replace(".json", "_leaky.json")
    convert["to"] = matrix_name(model, seed, variant)
    if variant == "shuffled":
        convert["shuffle"] = True
    if cold:
        build["to"] = convert["from"] = build["to"].replace(".json", f"{cold}.json")
        convert["to"] = convert["to"].replace(".pt", f"{cold}.pt")
    return config


def item_profiles_config(seed, cold, variant="llmkt"):
    """llm_config of the item side: template item profiles from the (cut) training split, encoded by MiniLM; a
    variant other than llmkt converts them into a matrix of its own (runs in parallel never share one)."""
    tag = "" if variant == "llmkt" else f"_{variant}"
    profiles, matrix = f"item_profiles_rs_s{seed}{cold}.json", f"item_minilm384{tag}_rs_s{seed}{cold}.pt"
    return {"embeddings_path": "datasets/llm_embeddings",
            "build_profiles": {"entity": "item", "source": "template", "encoder": "minilm", "to": profiles},
            "preprocess_from_json": {"entity": "item", "from": profiles, "to": matrix, "by": "recbole"},
            "use_user_emb": False, "use_item_emb": True, "items_start_with_1": True}


def matrix_name(model, seed, variant):
    name = bench.PROFILES[profile_kind(model)][1].format(seed=seed)
    return name if variant == "llmkt" else name.replace("_rs_", f"_{variant}_rs_")


def scenario(model, variant, seed, distil, test, cold="", llm=None):
    """The benchmark's two phases with the audit's epochs, evaluated under both protocols at the end. ``llm``:
    the run's llm_config (its matrix is what the distillation reads)."""
    steps = bench.scenario(model, variant, seed, MAX_EPOCHS[model], distil, test)
    if distil:
        convert = llm["preprocess_from_json"]
        source = convert["to"]
        reduced = source.replace(".pt", f"_w{distil['width']}.pt")
        for step in steps:
            if "reduce_dim" in step:
                step["reduce_dim"].update(file_in=source, file_out=reduced)
            if "wrap_model" in step:
                key = f"{convert.get('entity', 'user')}s_emb_file"  # in users_emb_file's place
                step["wrap_model"] = {key if k == "users_emb_file" else k: reduced if k == "users_emb_file" else v
                                      for k, v in step["wrap_model"].items()}
    if test:
        steps.append({"test_eval": dict(SECOND_PROTOCOL)})
    return steps


def experiment(model, variant, seed, *, test=True, journal="audit_journal.csv", recbole=None, cold_k=None,
               side="users"):
    spec = bench.MODELS[model]
    distil = (None if variant.startswith("baseline") else ALLROWS_DISTIL[side] if variant == "llmkt_allrows"
              else ITEM_DISTIL if side == "items" else spec["distil"])
    cold = f"_cold{cold_k}" if cold_k else ""
    llm = (item_profiles_config(seed, cold, variant) if side == "items" else profiles_config(model, seed, variant, cold)
           ) if distil else None
    settings = {
        "logger_level": "WARNING",
        "journal_name": journal,
        **bench.COMMON,
        "stopping_step": STOPPING_STEP,
        "model": model,
        "seed": seed,
        **spec["recbole"],
        **(recbole or {}),
        **(COLD_RECBOLE.get(model, {}) if cold_k else {}),
        "distil_loss_weight": distil["alpha"] if distil else 0.5,
        "scenario": scenario(model, variant, seed, distil, test, cold, llm),
    }
    if distil:  # the baseline reads no profiles
        settings["llm_config"] = llm
    if cold_k:
        settings["cold_start"] = {side: COLD_SHARE, "k": cold_k}
    header = (f"# {model} on ml-100k, {variant}, seed {seed}: written by experiments/audit_ml100k/generate.py; "
              "edit that script, not this file.\n")
    return header + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=110)


def write_audit(folder):
    for model in bench.MODELS:
        for seed in SEEDS:
            for variant in VARIANTS:
                text = experiment(model, variant, seed)
                (folder / f"{model.lower()}_{variant}_s{seed}.yaml").write_text(text)
            if model in BASELINE_TUNED:
                text = experiment(model, "baseline_tuned", seed, recbole=BASELINE_TUNED[model])
                (folder / f"{model.lower()}_baseline_tuned_s{seed}.yaml").write_text(text)


def cold_folder(k, side):
    return HERE.parent / (f"audit_cold{k}_ml100k" if side == "users" else f"audit_cold{k}_items_ml100k")


def write_cold(folder, k, side):
    """The cold-start study at one k: COLD_MODELS[side] x COLD_VARIANTS x seeds, one journal per folder; files named
    seed first, so that a folder run in name order finishes whole pairs (baseline and llmkt of a seed) first."""
    journal = f"audit_cold{k}_journal.csv" if side == "users" else f"audit_cold{k}_items_journal.csv"
    for model in COLD_MODELS[side]:
        for seed in SEEDS:
            for variant in COLD_VARIANTS:
                if variant == "llmkt_allrows" and (model != "NeuMF" or k not in ALLROWS_K):
                    continue
                text = experiment(model, variant, seed, journal=journal, cold_k=k, side=side)
                (folder / f"{model.lower()}_s{seed}_{variant}.yaml").write_text(text)


def tuning_settings(model):
    """The baseline's sweep: the default and as many (learning_rate, weight_decay) pairs as LLM-KT's sweep had."""
    default = (bench.MODELS[model]["recbole"]["learning_rate"], 0.0)
    budget = len(bench.TUNING[model])
    return [default] + [pair for pair in BASELINE_GRID if pair != default][:budget]


def write_tuning(folder):
    for model in bench.MODELS:
        for seed in TUNING_SEEDS:
            for index, (lr, decay) in enumerate(tuning_settings(model)):
                name = f"lr{lr:g}_wd{decay:g}"
                variant = "baseline" if index == 0 else f"baseline_{name}"  # report.py compares with 'baseline'
                text = experiment(model, variant, seed, test=False, journal="audit_tuning_journal.csv",
                                  recbole={"learning_rate": lr, "weight_decay": decay})
                (folder / f"{model.lower()}_baseline_{name}_s{seed}.yaml").write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuning", action="store_true", help="write the baseline's validation-only sweep instead")
    parser.add_argument("--cold-start", type=int, choices=[2, 5, 10], dest="cold_k",
                        help="the cold-start study: cut 20%% of the users' training history to K interactions")
    parser.add_argument("--items", action="store_true", help="with --cold-start: cut the items' instead (item side)")
    parser.add_argument("--out", type=Path, help="write into this folder instead")
    args = parser.parse_args()
    if args.items and not args.cold_k or args.tuning and args.cold_k:
        parser.error("--items goes with --cold-start, and --cold-start not with --tuning")
    side = "items" if args.items else "users"
    default = HERE.parent / "audit_tuning_ml100k" if args.tuning else cold_folder(args.cold_k, side) if args.cold_k \
        else HERE
    folder = args.out or default
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    if args.tuning:
        write_tuning(folder)
    elif args.cold_k:
        write_cold(folder, args.cold_k, side)
    else:
        write_audit(folder)
    print(f"wrote {len(list(folder.glob('*.yaml')))} experiments to {folder}")


if __name__ == "__main__":
    main()
