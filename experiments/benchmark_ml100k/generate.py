"""Write the ml-100k benchmark (and its validation-only tuning sweep) as one YAML per experiment.

    python experiments/benchmark_ml100k/generate.py            # the benchmark: MODELS x {baseline, llmkt} x SEEDS
    python experiments/benchmark_ml100k/generate.py --tuning   # experiments/tuning_ml100k/: no test_eval at all

Adding a model is one entry in MODELS, a seed one number in SEEDS. Every experiment has the same two phases
(a new optimizer between them, phase 2 starting from phase 1's best model); the baseline runs them without the
distillation loss, so both variants train the same number of epochs on the same split.
"""

import argparse
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SEEDS = [1, 2, 3, 4, 5]
TUNING_SEEDS = [11, 12, 13]  # tuning never sees the benchmark's seeds, hence never its test splits

COMMON = {
    "dataset": "ml-100k",
    "use_gpu": False,
    "show_progress": False,
    "reproducibility": True,
    "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
    "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
    "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "eval_batch_size": 409600,
    "stopping_step": 10,
}

# model -> RecBole settings, phase epochs and the distillation chosen on the validation split (see README)
MODELS = {
    "NeuMF": {
        "recbole": {"mf_embedding_size": 64, "mlp_embedding_size": 64, "mlp_hidden_size": [128, 64],
                    "dropout_prob": 0.1, "learning_rate": 0.001, "train_batch_size": 2048},
        "epochs": (10, 10),
        "distil": {"loss": "NeumfUserCosine", "layer": "user_mlp_embedding", "width": 32, "alpha": 0.5},
    },
    "SimpleX": {
        "recbole": {"embedding_size": 64, "learning_rate": 0.001, "train_batch_size": 2048,
                    "train_neg_sample_args": {"distribution": "uniform", "sample_num": 10}},
        "epochs": (10, 10),
        "distil": {"loss": "SimpleXUserRMSE", "layer": "dropout", "width": 32, "alpha": 0.5},
    },
    "MultiVAE": {
        "recbole": {"mlp_hidden_size": [600], "latent_dimension": 128, "learning_rate": 0.001,
                    "train_batch_size": 512},
        "epochs": (50, 50),
        "distil": {"loss": "MultiVAEUserRMSE", "layer": "decoder.0", "width": 32, "alpha": 0.5},
    },
}

# validation-only sweep over the distillation settings (NeuMF); each entry overrides MODELS[...]["distil"]
TUNING = {
    "NeuMF": {
        "emb_cos_w32_a05": {"loss": "NeumfUserCosine", "layer": "user_mlp_embedding", "width": 32, "alpha": 0.5},
        "emb_rmse_w32_a05": {"loss": "NeumfUserRMSE", "layer": "user_mlp_embedding", "width": 32, "alpha": 0.5},
        "mlp1_cos_w32_a05": {"loss": "NeumfUserCosine", "layer": "mlp_layers.mlp_layers.1", "width": 32, "alpha": 0.5},
        "mlp1_rmse_w32_a05": {"loss": "NeumfUserRMSE", "layer": "mlp_layers.mlp_layers.1", "width": 32,
                              "alpha": 0.5},
        "gmf_cos_w32_a05": {"loss": "NeumfUserCosine", "layer": "user_mf_embedding", "width": 32, "alpha": 0.5},
        "emb_cos_w32_a01": {"loss": "NeumfUserCosine", "layer": "user_mlp_embedding", "width": 32, "alpha": 0.1},
        "emb_cos_w32_a09": {"loss": "NeumfUserCosine", "layer": "user_mlp_embedding", "width": 32, "alpha": 0.9},
        "emb_cos_w16_a05": {"loss": "NeumfUserCosine", "layer": "user_mlp_embedding", "width": 16, "alpha": 0.5},
    },
    "SimpleX": {
        "agg_rmse_w32_a05": {"loss": "SimpleXUserRMSE", "layer": "dropout", "width": 32, "alpha": 0.5},
        "agg_cos_w32_a05": {"loss": "SimpleXUserCosine", "layer": "dropout", "width": 32, "alpha": 0.5},
        "agg_cos_w32_a01": {"loss": "SimpleXUserCosine", "layer": "dropout", "width": 32, "alpha": 0.1},
    },
    "MultiVAE": {
        "z_rmse_w32_a05": {"loss": "MultiVAEUserRMSE", "layer": "decoder.0", "width": 32, "alpha": 0.5},
        "z_cos_w32_a05": {"loss": "HiddenDistil", "layer": "decoder.0", "width": 32, "alpha": 0.5,
                          "params": {"source": "input", "rows": "batch", "distance": "cosine"}},
        "z_cos_w32_a01": {"loss": "HiddenDistil", "layer": "decoder.0", "width": 32, "alpha": 0.1,
                          "params": {"source": "input", "rows": "batch", "distance": "cosine"}},
    },
}


def profiles_config(seed):
    split = f"rs_s{seed}"
    return {
        "embeddings_path": "datasets/llm_embeddings",
        "build_profiles": {"source": "template", "encoder": "minilm", "to": f"user_profiles_{split}.json"},
        "preprocess_from_json": {"from": f"user_profiles_{split}.json", "to": f"user_minilm384_{split}.pt",
                                 "by": "recbole"},
        "use_user_emb": True,
        "use_item_emb": False,
        "users_start_with_1": True,
    }


def scenario(model, variant, seed, epochs, distil, test):
    """The two phases; with distil None, the baseline's (same steps, no distillation loss)."""
    first, second = epochs
    width = distil["width"] if distil else None
    steps = [{"set": {"train_part": 0, "variant": variant}}, {"init_model": None}]
    if distil:
        reduced = f"user_minilm{width}_rs_s{seed}.pt"
        steps += [
            {"reduce_dim": {"file_in": f"user_minilm384_rs_s{seed}.pt", "file_out": reduced, "dimension": width}},
            {"wrap_model": {"distil_loss": distil["loss"], "users_emb_file": reduced, "particular": True,
                            **distil.get("params", {})}},
            {"set_outputs": [distil["layer"]]},
        ]
    steps += [{"set_config": {"epochs": first}}, {"init_trainer": None}, {"train": None}]
    if test:
        steps.append({"test_eval": None})
    steps += [{"set": {"train_part": 1}}]
    if distil:
        steps.append({"remove_outputs": None})
    steps += [{"set_config": {"epochs": second}}, {"init_trainer": None},
              {"load_from_file": {"file": "best", "resume": False}}, {"train": None}]
    if test:
        steps.append({"test_eval": None})
    return steps


def experiment(model, variant, seed, distil, test, journal):
    spec = MODELS[model]
    settings = {
        "logger_level": "WARNING",
        "journal_name": journal,
        **COMMON,
        "model": model,
        "seed": seed,
        **spec["recbole"],
        "llm_config": profiles_config(seed),
        "distil_loss_weight": distil["alpha"] if distil else 0.5,
        "scenario": scenario(model, variant, seed, spec["epochs"], distil, test),
    }
    header = (f"# {model} on ml-100k, {variant}, seed {seed}: written by experiments/benchmark_ml100k/generate.py; "
              "edit that script, not this file.\n")
    return header + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=110)


def write_benchmark(folder):
    for model, spec in MODELS.items():
        for seed in SEEDS:
            for variant, distil in (("baseline", None), ("llmkt", spec["distil"])):
                text = experiment(model, variant, seed, distil, test=True, journal="benchmark_journal.csv")
                (folder / f"{model.lower()}_{variant}_s{seed}.yaml").write_text(text)


def write_tuning(folder):
    for model, variants in TUNING.items():
        for seed in TUNING_SEEDS:
            text = experiment(model, "baseline", seed, None, test=False, journal="tuning_journal.csv")
            (folder / f"{model.lower()}_baseline_s{seed}.yaml").write_text(text)
            for name, distil in variants.items():
                text = experiment(model, name, seed, distil, test=False, journal="tuning_journal.csv")
                (folder / f"{model.lower()}_{name}_s{seed}.yaml").write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuning", action="store_true", help="write the validation-only sweep instead")
    parser.add_argument("--out", type=Path, help="write into this folder instead")
    args = parser.parse_args()
    folder = args.out or (HERE.parent / "tuning_ml100k" if args.tuning else HERE)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    (write_tuning if args.tuning else write_benchmark)(folder)
    print(f"wrote {len(list(folder.glob('*.yaml')))} experiments to {folder}")


if __name__ == "__main__":
    main()
