"""Write the knowledge ladder of ml-100k (issue 25: can the channel carry knowledge at all?), one YAML per experiment.

    python experiments/ladder_ml100k/generate.py                     # MODELS x SETTINGS x VARIANTS x seeds 1-10
    python experiments/ladder_ml100k/generate.py --models NeuMF --seeds 1 --out DIR       # e.g. a pilot
    python tools/ladder_targets.py experiments/ladder_ml100k/         # then build the targets the runs read
    python run_exps.py experiments/ladder_ml100k/ --workers 2

Every variant is the audit's protocol (experiments/audit_ml100k/generate.py: the benchmark's models, split and
distillation layer, loss and width; two phases trained to convergence with early stopping; full ranking) with only
the distillation *target* changed (tools/ladder_targets.py builds them; ``ladder_targets.json`` says which file
each experiment reads):

- *baseline*: no distillation;
- *template* (a): template profiles encoded by MiniLM;
- *template_remapped* (b): the same template after each item's title, year and genres were given to another item;
  (a) - (b) is the effect of the texts' world knowledge;
- *svd_train* (c): a truncated SVD of the user's training row: interactions only, no text;
- *oracle_valid* (d): the ORACLE positive control, the mean MiniLM vector of the user's validation items' texts
  (never the test items): what the channel can carry when the target holds held-out information.

Two settings: all users as they are, and cold users (a fifth of the users cut to k = 2 training interactions, the
cold-start study's cut), whose per-user test NDCG@10 report.py tables as protocol ``cold_users``.
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

MODELS = ("NeuMF", "SimpleX")
SEEDS = tuple(range(1, 11))
SETTINGS = {"all": None, "cold2": {"users": audit.COLD_SHARE, "k": 2}}
VARIANTS = ("baseline", "template", "template_remapped", "svd_train", "oracle_valid")
JOURNAL = "ladder_journal.csv"
# NeuMF's full ranking by its factorised scorer (models/neumf.py): the same scores, about five times faster
RECBOLE = {"NeuMF": {"neumf_full_sort": "parts"}}


def target_name(model, variant, seed, setting):
    """The target matrix an experiment reads (in the embeddings folder), one per model, variant, seed, setting."""
    cold = "" if setting == "all" else f"_{setting}"
    return f"ladder_{variant}_{model.lower()}_rs_s{seed}{cold}.pt"


def distillation(model, variant, seed, setting):
    """The benchmark's distillation of ``model`` (layer, loss, width, alpha) reading the ladder's target, or None."""
    if variant == "baseline":
        return None, []
    distil = dict(bench.MODELS[model]["distil"])
    source = target_name(model, variant, seed, setting)
    reduced = source.replace(".pt", f"_w{distil['width']}.pt")
    steps = [
        {"reduce_dim": {"file_in": source, "file_out": reduced, "dimension": distil["width"], "method": "pca"}},
        {"wrap_model": {"distil_loss": distil["loss"], "users_emb_file": reduced, "particular": True,
                        **distil.get("params", {})}},
        {"set_outputs": [distil["layer"]]},
    ]
    return distil, steps


def scenario(model, variant, seed, setting, epochs=None):
    """The audit's two phases (audit.MAX_EPOCHS, early stopping), the target's distillation in phase 1 only;
    ``epochs`` (a pilot's) replaces the maximum of each phase."""
    first, second = epochs or audit.MAX_EPOCHS[model]
    distil, wrap = distillation(model, variant, seed, setting)
    steps = [{"set": {"train_part": 0, "variant": variant}}, {"init_model": None}, *wrap,
             {"set_config": {"epochs": first}}, {"init_trainer": None}, {"train": None}, {"test_eval": None},
             {"set": {"train_part": 1}}]
    if distil:
        steps.append({"remove_outputs": None})
    steps += [{"set_config": {"epochs": second}}, {"init_trainer": None},
              {"load_from_file": {"file": "best", "resume": False}}, {"train": None}, {"test_eval": None}]
    return steps


def experiment(model, variant, seed, setting, journal=JOURNAL, epochs=None):
    spec = bench.MODELS[model]
    distil, _ = distillation(model, variant, seed, setting)
    settings = {
        "logger_level": "WARNING",
        "journal_name": journal,
        **bench.COMMON,
        "stopping_step": audit.STOPPING_STEP,
        "model": model,
        "seed": seed,
        **spec["recbole"],
        **RECBOLE.get(model, {}),
        "distil_loss_weight": distil["alpha"] if distil else 0.5,
        "scenario": scenario(model, variant, seed, setting, epochs),
    }
    if distil:
        settings["llm_config"] = {"embeddings_path": "datasets/llm_embeddings", "use_user_emb": True,
                                  "use_item_emb": False, "users_start_with_1": True}
    if SETTINGS[setting]:
        settings["cold_start"] = dict(SETTINGS[setting])
    label = "ORACLE positive control (validation items), " if variant == "oracle_valid" else ""
    label += f"PILOT budget {epochs[0]} + {epochs[1]} epochs, " if epochs else ""
    header = (f"# {model} on ml-100k, ladder {label}{variant}, {setting}, seed {seed}: written by "
              "experiments/ladder_ml100k/generate.py; edit that script, not this file.\n")
    return header + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=110)


def file_name(model, variant, seed, setting):
    """Seed first within a model and setting, so a folder run in name order completes whole seeds first."""
    return f"{model.lower()}_{setting}_s{seed:02d}_{variant}.yaml"


def write(folder, models=MODELS, seeds=SEEDS, settings=tuple(SETTINGS), variants=VARIANTS, epochs=None):
    """Write the experiments and the manifest of targets (``ladder_targets.json``); returns the manifest."""
    manifest = {}
    for model in models:
        for setting in settings:
            for seed in seeds:
                for variant in variants:
                    name = file_name(model, variant, seed, setting)
                    (folder / name).write_text(experiment(model, variant, seed, setting, epochs=epochs))
                    if variant != "baseline":
                        manifest[name] = {"kind": variant, "to": target_name(model, variant, seed, setting),
                                          "split": f"{model.lower()}_{setting}_s{seed}"}
    (folder / "ladder_targets.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--epochs", nargs=2, type=int, metavar=("PHASE1", "PHASE2"),
                        help="a pilot's fixed epochs per phase instead of training to convergence (never evidence)")
    parser.add_argument("--out", type=Path, help="write into this folder instead")
    args = parser.parse_args()
    folder = args.out or HERE
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    manifest = write(folder, args.models, args.seeds, args.settings, args.variants, args.epochs)
    print(f"wrote {len(list(folder.glob('*.yaml')))} experiments and {len(manifest)} targets to {folder}")


if __name__ == "__main__":
    main()
