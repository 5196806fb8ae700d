"""Write the budget arm of ml-100k (issue 25: does the training budget make or unmake LLM-KT's gain?).

    python experiments/budget_ml100k/generate.py     # experiments/budget_{orig,fixed10,converged}_ml100k/: 3 x 45

The audit's variants (baseline, llmkt on train-only profiles, shuffled) and its profiles and distillation
(experiments/audit_ml100k/generate.py), under three budgets that differ in nothing else:

- *orig*: the original tool's configs: 2 + 2 epochs at learning rate 0.01, training batches of 64 (MultiVAE 72),
  the model kept on the sampled validation protocol the original used (``pop20``);
- *fixed10*: the benchmark's fixed epochs (10 + 10; MultiVAE 50 + 50), learning rate 0.001, batches of 2048
  (MultiVAE 512), selection on full-ranking validation;
- *converged*: the audit's (at most 100 + 100, MultiVAE 200 + 200, early stopping after 10 epochs without a better
  validation NDCG@10).

Every run is tested under full ranking and uni100 from the same training. Each budget is a folder of its own with
its own journal (experiments/budget_<budget>_ml100k/), so that report.py compares each budget's variants with that
budget's baseline:

    for b in orig fixed10 converged; do
      python run_exps.py experiments/budget_${b}_ml100k/ --workers 2
      python report.py experiments/budget_${b}_ml100k/ --curves none --out docs/results/budget/$b
    done
"""

import argparse
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

MODELS = tuple(bench.MODELS)  # NeuMF, SimpleX, MultiVAE
SEEDS = tuple(audit.SEEDS)
VARIANTS = ("baseline", "llmkt", "shuffled")
ORIGINAL_BATCH = {"NeuMF": 64, "SimpleX": 64, "MultiVAE": 72}  # the original's ML-1M configs
BUDGETS = {
    "orig": {"epochs": {m: (2, 2) for m in MODELS}, "stopping_step": 10,
             "recbole": lambda m: {"learning_rate": 0.01, "train_batch_size": ORIGINAL_BATCH[m],
                                   "eval_args": {**bench.COMMON["eval_args"],
                                                 "mode": {"valid": "pop20", "test": "full"}}}},
    "fixed10": {"epochs": {m: tuple(bench.MODELS[m]["epochs"]) for m in MODELS}, "stopping_step": 10,
                "recbole": lambda m: {}},
    "converged": {"epochs": dict(audit.MAX_EPOCHS), "stopping_step": audit.STOPPING_STEP, "recbole": lambda m: {}},
}


def folder_of(budget):
    return HERE.parent / f"budget_{budget}_ml100k"


def with_epochs(steps, epochs):
    """The scenario with its two ``set_config: {epochs}`` steps set to ``epochs`` (phase 1, phase 2)."""
    phases = iter(epochs)
    return [{"set_config": {**step["set_config"], "epochs": next(phases)}}
            if "epochs" in step.get("set_config", {}) else step for step in steps]


def experiment(model, variant, seed, budget):
    spec, arm = bench.MODELS[model], BUDGETS[budget]
    distil = None if variant == "baseline" else spec["distil"]
    llm = audit.profiles_config(model, seed, variant) if distil else None
    if llm:  # one matrix per budget, so that parallel runs of one seed never write the same file
        convert = llm["preprocess_from_json"]
        convert["to"] = convert["to"].replace(".pt", f"_{budget}.pt")
    steps = audit.scenario(model, variant, seed, distil, True, llm=llm)
    settings = {
        "logger_level": "WARNING",
        "journal_name": f"budget_{budget}_journal.csv",
        **bench.COMMON,
        "stopping_step": arm["stopping_step"],
        "model": model,
        "seed": seed,
        **spec["recbole"],
        **arm["recbole"](model),
        **audit.COLD_RECBOLE.get(model, {}),
        "distil_loss_weight": distil["alpha"] if distil else 0.5,
        "scenario": with_epochs(steps, arm["epochs"][model]),
    }
    if llm:
        settings["llm_config"] = llm
    header = (f"# {model} on ml-100k, budget {budget}, {variant}, seed {seed}: written by "
              "experiments/budget_ml100k/generate.py; edit that script, not this file.\n")
    return header + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=110)


def write(folder, budget, models=MODELS, seeds=SEEDS):
    """One budget's experiments, seed first within a model so that whole seeds finish first."""
    for model in models:
        for seed in seeds:
            for variant in VARIANTS:
                text = experiment(model, variant, seed, budget)
                (folder / f"{model.lower()}_s{seed}_{variant}.yaml").write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--budgets", nargs="+", choices=list(BUDGETS), default=list(BUDGETS))
    parser.add_argument("--out", type=Path, help="write the budgets' folders under this folder instead")
    args = parser.parse_args()
    for budget in args.budgets:
        folder = args.out / f"budget_{budget}_ml100k" if args.out else folder_of(budget)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.yaml"):
            old.unlink()
        write(folder, budget, args.models, args.seeds)
        print(f"wrote {len(list(folder.glob('*.yaml')))} experiments to {folder}")


if __name__ == "__main__":
    main()
