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

# model -> RecBole settings, phase epochs and the distillation chosen on the validation split: the best mean
# validation NDCG@10 of experiments/tuning_ml100k (seeds 11-13, no test evaluation at all; see docs/RESULTS.md)
MODELS = {
    "NeuMF": {
        "recbole": {"mf_embedding_size": 64, "mlp_embedding_size": 64, "mlp_hidden_size": [128, 64],
                    "dropout_prob": 0.1, "learning_rate": 0.001, "train_batch_size": 2048},
        "epochs": (10, 10),
        "distil": {"loss": "NeumfUserCosine", "layer": "user_mf_embedding", "width": 32, "alpha": 0.5,
                   "profiles": "tfidf"},
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
        "distil": {"loss": "HiddenDistil", "layer": "decoder.0", "width": 32, "alpha": 0.5,
                   "params": {"source": "input", "rows": "batch", "distance": "cosine"}},
    },
}

# extra variants of the benchmark: the same distillation with random vectors instead of profiles, which tells
# knowledge from mere regularization
CONTROLS = {
    "NeuMF": {"random": {"loss": "NeumfUserCosine", "layer": "user_mf_embedding", "width": 32, "alpha": 0.5,
                         "profiles": "random"}},
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
        # controls for the best of the above: another encoder, and random vectors that carry no knowledge
        "gmf_cos_w32_a05_tfidf": {"loss": "NeumfUserCosine", "layer": "user_mf_embedding", "width": 32,
                                  "alpha": 0.5, "profiles": "tfidf"},
        "gmf_cos_w32_a05_random": {"loss": "NeumfUserCosine", "layer": "user_mf_embedding", "width": 32,
                                   "alpha": 0.5, "profiles": "random"},
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


PROFILES = {  # profile kind -> (encoder, matrix name); 'random' is the control: vectors that carry no knowledge
    "minilm": ("minilm", "user_minilm384_rs_s{seed}.pt"),
    "tfidf": ("tfidf", "user_tfidf256_rs_s{seed}.pt"),
    "random": (None, "user_random384_rs_s{seed}.pt"),
}


def profiles_config(seed, kind="minilm"):
    split = f"rs_s{seed}"
    encoder, matrix = PROFILES[kind]
    config = {"embeddings_path": "datasets/llm_embeddings"}
    if encoder is None:
        config["preprocess_random"] = {"random": True, "embedding_size": 384,
                                       "random_users_emb_file": matrix.format(seed=seed)}
    else:
        profiles = f"user_profiles_{split}.json" if kind == "minilm" else f"user_profiles_{split}_{kind}.json"
        config["build_profiles"] = {"source": "template", "encoder": encoder, "to": profiles}
        config["preprocess_from_json"] = {"from": profiles, "to": matrix.format(seed=seed), "by": "recbole"}
    return {**config, "use_user_emb": True, "use_item_emb": False, "users_start_with_1": True}


def scenario(model, variant, seed, epochs, distil, test):
    """The two phases; with distil None, the baseline's (same steps, no distillation loss)."""
    first, second = epochs
    width = distil["width"] if distil else None
    steps = [{"set": {"train_part": 0, "variant": variant}}, {"init_model": None}]
    if distil:
        kind = distil.get("profiles", "minilm")
        reduced = f"user_{kind}{width}_rs_s{seed}.pt"
        source = PROFILES[kind][1].format(seed=seed)
        steps += [
            {"reduce_dim": {"file_in": source, "file_out": reduced, "dimension": width, "method": "pca"}},
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
        "llm_config": profiles_config(seed, (distil or {}).get("profiles", "minilm")),
        "distil_loss_weight": distil["alpha"] if distil else 0.5,
        "scenario": scenario(model, variant, seed, spec["epochs"], distil, test),
    }
    header = (f"# {model} on ml-100k, {variant}, seed {seed}: written by experiments/benchmark_ml100k/generate.py; "
              "edit that script, not this file.\n")
    return header + yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=110)


def write_benchmark(folder):
    for model, spec in MODELS.items():
        variants = {"baseline": None, "llmkt": spec["distil"], **CONTROLS.get(model, {})}
        for seed in SEEDS:
            for variant, distil in variants.items():
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
