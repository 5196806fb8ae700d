"""Write the paper's comparison on its own datasets: experiments/paper_ml1m/ and experiments/paper_amazon_cds/.

    python experiments/paper_ml1m/generate.py       # rewrites the .yaml files of both folders

RecBole downloads both datasets by name on the first run (``ml-1m``, ``amazon-cds-vinyl``) into ``datasets/``.
For each dataset: NeuMF, SimpleX and MultiVAE as a baseline / LLM-KT pair, each evaluated twice: by full ranking
over all items (``full``: the honest protocol) and by the paper's sampled protocol (``sampled``: validation
against 20 popularity-sampled negatives, test against 100 uniformly sampled ones, model selection by MRR@10, as
the original tool's configs did); and DCN and DeepFM as click-through models (label = rating >= 4) scored by AUC
and LogLoss. Both variants of a pair run the same two phases on the same split; only LLM-KT adds the distillation
loss in phase 1. Profiles are written from the training split (template source, MiniLM).

Adding a model is one entry in RANKING or CTR, a seed one number in SEEDS, a dataset one entry in DATASETS.
"""

import runpy
from pathlib import Path
from types import SimpleNamespace

import yaml

HERE = Path(__file__).resolve().parent


def _benchmark_generator():
    """experiments/benchmark_ml100k/generate.py's names (the experiments folder is no package)."""
    return SimpleNamespace(**runpy.run_path(str(HERE.parent / "benchmark_ml100k" / "generate.py")))

SEEDS = [42]

DATASETS = {
    "paper_ml1m": {
        "dataset": "ml-1m",
        "ctr_columns": {"user": ["user_id", "age", "gender", "occupation"],
                        "item": ["item_id", "release_year", "genre"]},
        "fields": {"genres": "genre", "noun": "movie"},  # ml-1m.item names its genre column 'genre'
        "filters": {},
    },
    "paper_amazon_cds": {
        "dataset": "amazon-cds-vinyl",
        # RecBole's Amazon ratings files hold user, item, rating and time only: no item text, no user fields
        "ctr_columns": {},
        "fields": {"noun": "CD"},
        # 1.6M users and 0.5M items, most with one rating: keep users and items with at least 10 ratings
        "filters": {"user_inter_num_interval": "[10,inf)", "item_inter_num_interval": "[10,inf)"},
    },
}

COMMON = {
    "data_path": "datasets",
    "show_progress": False,
    "reproducibility": True,
    "stopping_step": 10,
}
PROTOCOLS = {
    "full": {"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
             "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"], "topk": [10], "valid_metric": "NDCG@10",
             "eval_batch_size": 409600},
    "sampled": {"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO",
                              "mode": {"valid": "pop20", "test": "uni100"}},
                "metrics": ["Recall", "MRR", "NDCG", "Hit", "MAP"], "topk": [10], "valid_metric": "MRR@10",
                "eval_batch_size": 409600},
    "auc": {"eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO",
                          "mode": {"valid": "labeled", "test": "labeled"}},
            "threshold": {"rating": 4}, "train_neg_sample_args": None,
            "metrics": ["AUC", "LogLoss"], "valid_metric": "AUC", "eval_batch_size": 40960},
}

# model -> RecBole settings, phase epochs and the distillation: the ranking models take the settings chosen on
# ml-100k's validation split (experiments/tuning_ml100k, docs/RESULTS.md) from the benchmark's generator, so the
# two never drift apart (its "profiles" choice is not used here: the paper's folders always encode with MiniLM)
RANKING = _benchmark_generator().MODELS
CTR = {
    "DCN": {
        "recbole": {"embedding_size": 10, "mlp_hidden_size": [256, 256, 256], "learning_rate": 0.001,
                    "train_batch_size": 2048},
        "epochs": (5, 5),
        "distil": {"loss": "HiddenDistil", "layer": "mlp_layers.mlp_layers.1", "width": 64, "alpha": 0.5,
                   "params": {"rows": "batch"}},
    },
    "DeepFM": {
        "recbole": {"embedding_size": 10, "mlp_hidden_size": [128, 128, 128], "learning_rate": 0.001,
                    "train_batch_size": 2048},
        "epochs": (5, 5),
        "distil": {"loss": "HiddenDistil", "layer": "mlp_layers.mlp_layers.1", "width": 64, "alpha": 0.5,
                   "params": {"rows": "batch"}},
    },
}


def llm_config(spec, seed, tag):
    profiles, matrix = f"user_profiles_rs_s{seed}{tag}.json", f"user_minilm384_rs_s{seed}{tag}.pt"
    return {
        "embeddings_path": "datasets/llm_embeddings",
        "build_profiles": {"source": "template", "encoder": "minilm", "to": profiles, "fields": spec["fields"]},
        "preprocess_from_json": {"from": profiles, "to": matrix, "by": "recbole"},
        "use_user_emb": True, "use_item_emb": False, "users_start_with_1": True,
    }


def scenario(variant, seed, tag, epochs, distil):
    """Two phases; the baseline runs the same steps without the distillation loss."""
    first, second = epochs
    steps = [{"set": {"train_part": 0, "variant": variant}}, {"init_model": None}]
    if variant == "llmkt":
        reduced = f"user_minilm{distil['width']}_rs_s{seed}{tag}.pt"
        steps += [
            {"reduce_dim": {"file_in": f"user_minilm384_rs_s{seed}{tag}.pt", "file_out": reduced,
                            "dimension": distil["width"], "method": "pca"}},
            {"wrap_model": {"distil_loss": distil["loss"], "users_emb_file": reduced, "particular": True,
                            **distil.get("params", {})}},
            {"set_outputs": [distil["layer"]]},
        ]
    steps += [{"set_config": {"epochs": first}}, {"init_trainer": None}, {"train": None}, {"test_eval": None},
              {"set": {"train_part": 1}}]
    if variant == "llmkt":
        steps.append({"remove_outputs": None})
    steps += [{"set_config": {"epochs": second}}, {"init_trainer": None},
              {"load_from_file": {"file": "best", "resume": False}}, {"train": None}, {"test_eval": None}]
    return steps


def experiment(folder, spec, model, settings, variant, protocol, seed):
    tag = "_ctx" if protocol == "auc" else ""
    columns = {"inter": ["user_id", "item_id", "rating", "timestamp"]}
    if protocol == "auc":
        columns.update(spec["ctr_columns"])
    config = {
        "logger_level": "WARNING",
        "journal_name": f"{protocol}_journal.csv",  # one per protocol: a report never mixes them
        "dataset": spec["dataset"],
        **COMMON,
        "seed": seed,
        "load_col": columns,
        **spec["filters"],
        **PROTOCOLS[protocol],
        "model": model,
        **settings["recbole"],
        "llm_config": llm_config(spec, seed, tag),
        "distil_loss_weight": settings["distil"]["alpha"] if variant == "llmkt" else 0.5,
        "scenario": scenario(variant, seed, tag, settings["epochs"], settings["distil"]),
    }
    header = (f"# {model} on {spec['dataset']}, {variant}, {protocol} evaluation, seed {seed}.\n"
              "# Written by experiments/paper_ml1m/generate.py: edit that script, not this file.\n"
              f"# RecBole downloads {spec['dataset']} into datasets/ on the first run.\n")
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None, width=110)


def write(folder, spec):
    target = HERE.parent / folder
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.yaml"):
        old.unlink()
    jobs = [(m, s, p) for m, s in RANKING.items() for p in ("full", "sampled")]
    jobs += [(m, s, "auc") for m, s in CTR.items()]
    for seed in SEEDS:
        for model, settings, protocol in jobs:
            for variant in ("baseline", "llmkt"):
                name = f"{model.lower()}_{protocol}_{variant}" + (f"_s{seed}" if len(SEEDS) > 1 else "")
                text = experiment(folder, spec, model, settings, variant, protocol, seed)
                (target / f"{name}.yaml").write_text(text)
    return target


def main():
    for folder, spec in DATASETS.items():
        target = write(folder, spec)
        print(f"wrote {len(list(target.glob('*.yaml')))} experiments to {target.relative_to(HERE.parent.parent)}")


if __name__ == "__main__":
    main()
