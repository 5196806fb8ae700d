"""Write the protocol audit of ml-100k (issue 15: is the gain real?) as one YAML per experiment.

    python experiments/audit_ml100k/generate.py              # MODELS x VARIANTS x seeds 1-5
    python experiments/audit_ml100k/generate.py --tuning     # experiments/audit_tuning_ml100k/: the baseline's own
                                                             # learning rate and weight decay, validation only
    python experiments/audit_ml100k/generate.py --cold-start 5 --out experiments/audit_cold5_ml100k

The models, their RecBole settings, the split and the distillation chosen on validation are the benchmark's
(imported from experiments/benchmark_ml100k/generate.py, never copied). What the audit changes:

- variants: *baseline*, *llmkt* (profiles from the training split), *leaky* (the same profiles written from every
  interaction, validation and test included: what leakage would add) and *shuffled* (the real profiles, each given
  to another user: the right distribution, the wrong person), all with the same two phases;
- training to convergence: the same generous maximum of epochs per phase for every variant (MAX_EPOCHS) and early
  stopping on validation NDCG@10 (RecBole's ``stopping_step``); the journal says how many epochs ran and which was
  the best (``train_k:epochs_run``, ``train_k:best_epoch``);
- two protocols from one training run: full ranking (the experiments' own) and uni100 (``uni100:ndcg@10``, ...).
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


def matrix_name(model, seed, variant):
    name = bench.PROFILES[profile_kind(model)][1].format(seed=seed)
    return name if variant == "llmkt" else name.replace("_rs_", f"_{variant}_rs_")


def scenario(model, variant, seed, distil, test, cold=""):
    """The benchmark's two phases with the audit's epochs, evaluated under both protocols at the end."""
    steps = bench.scenario(model, variant, seed, MAX_EPOCHS[model], distil, test)
    if distil:
        source = profiles_config(model, seed, variant, cold)["preprocess_from_json"]["to"]
        reduced = source.replace(".pt", f"_w{distil['width']}.pt")
        for step in steps:
            if "reduce_dim" in step:
                step["reduce_dim"].update(file_in=source, file_out=reduced)
            if "wrap_model" in step:
                step["wrap_model"]["users_emb_file"] = reduced
    if test:
        steps.append({"test_eval": dict(SECOND_PROTOCOL)})
    return steps


def experiment(model, variant, seed, *, test=True, journal="audit_journal.csv", recbole=None, cold_k=None):
    spec = bench.MODELS[model]
    distil = None if variant.startswith("baseline") else spec["distil"]
    cold = f"_cold{cold_k}" if cold_k else ""
    settings = {
        "logger_level": "WARNING",
        "journal_name": journal,
        **bench.COMMON,
        "stopping_step": STOPPING_STEP,
        "model": model,
        "seed": seed,
        **spec["recbole"],
        **(recbole or {}),
        "distil_loss_weight": distil["alpha"] if distil else 0.5,
        "scenario": scenario(model, variant, seed, distil, test, cold),
    }
    if distil:  # the baseline reads no profiles
        settings["llm_config"] = profiles_config(model, seed, variant, cold)
    if cold_k:
        settings["cold_start"] = {"users": 0.2, "k": cold_k}
    header = (f"# {model} on ml-100k, {variant}, seed {seed}: written by experiments/audit_ml100k/generate.py; "
              "edit that script, not this file.\n")
    return header + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=110)


def write_audit(folder, cold_k=None):
    journal = f"audit_cold{cold_k}_journal.csv" if cold_k else "audit_journal.csv"
    for model in bench.MODELS:
        for seed in SEEDS:
            for variant in VARIANTS:
                text = experiment(model, variant, seed, journal=journal, cold_k=cold_k)
                (folder / f"{model.lower()}_{variant}_s{seed}.yaml").write_text(text)
            if model in BASELINE_TUNED:
                text = experiment(model, "baseline_tuned", seed, journal=journal, recbole=BASELINE_TUNED[model],
                                  cold_k=cold_k)
                (folder / f"{model.lower()}_baseline_tuned_s{seed}.yaml").write_text(text)


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
                        help="cut 20%% of the users' training history to K interactions (cold_start)")
    parser.add_argument("--out", type=Path, help="write into this folder instead")
    args = parser.parse_args()
    default = HERE.parent / "audit_tuning_ml100k" if args.tuning else HERE
    if args.cold_k and not args.tuning:
        default = HERE.parent / f"audit_cold{args.cold_k}_ml100k"
    folder = args.out or default
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    if args.tuning:
        write_tuning(folder)
    else:
        write_audit(folder, args.cold_k)
    print(f"wrote {len(list(folder.glob('*.yaml')))} experiments to {folder}")


if __name__ == "__main__":
    main()
