"""Write the dense-vs-sparse equivalence study on ml-100k as one YAML per experiment.

    python experiments/sparse_ml100k/generate.py
    python run_exps.py experiments/sparse_ml100k/ --workers 1
    python report.py experiments/sparse_ml100k/ --out docs/results/sparse

Each of NeuMF, SimpleX and LightGCN, baseline and LLM-KT, trains as the ml-100k benchmark trains it
(experiments/benchmark_ml100k/generate.py: the same two phases, settings and distillation; TF-IDF profiles for every
model, the cheaper encoder) once with RecBole's dense update and once with ``sparse_embeddings: true``. The
variants are ``baseline``, ``sparse_baseline``, ``llmkt`` and ``sparse_llmkt``: report.py compares each with the
dense baseline over the seeds both have. Both phases train ``EPOCHS`` epochs (the benchmark: 10 and 10), so that
whole seeds fit an afternoon on two shared cores. File names sort by block: NeuMF and SimpleX seed by seed first,
then LightGCN (whose tables take whole-table gradients, so that its sparse runs train as its dense ones: the
check of the table-side decision), so that a run stopped early has whole seeds.
"""

import argparse
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = [1, 2, 3, 4, 5]
EPOCHS = (5, 5)
BLOCKS = (("NeuMF", "SimpleX"), ("LightGCN",))

_spec = importlib.util.spec_from_file_location("benchmark", HERE.parent / "benchmark_ml100k" / "generate.py")
benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark)

LIGHTGCN = {  # the ready lightgcn scenario's distillation (experiments/lightgcn)
    "recbole": {"embedding_size": 64, "n_layers": 2, "learning_rate": 0.001, "train_batch_size": 2048},
    "distil": {"loss": "LightGCNUserRMSE", "layer": 1, "width": 64, "alpha": 0.5},
}
MODELS = {"NeuMF": benchmark.MODELS["NeuMF"], "SimpleX": benchmark.MODELS["SimpleX"], "LightGCN": LIGHTGCN}


def experiment(model, variant, seed, sparse):
    spec = MODELS[model]
    distil = {**spec["distil"], "profiles": "tfidf"} if variant == "llmkt" else None
    name = f"sparse_{variant}" if sparse else variant
    steps = benchmark.scenario(model, name, seed, EPOCHS, distil, test=True)
    settings = {
        "logger_level": "WARNING",
        "journal_name": "sparse_journal.csv",
        **benchmark.COMMON,
        "model": model,
        "seed": seed,
        **spec["recbole"],
        "sparse_embeddings": sparse,
        "llm_config": benchmark.profiles_config(seed, "tfidf"),
        "distil_loss_weight": distil["alpha"] if distil else 0.5,
        "scenario": steps,
    }
    header = (f"# {model} on ml-100k, {name}, seed {seed}: written by experiments/sparse_ml100k/generate.py; "
              "edit that script, not this file.\n")
    return header + benchmark.yaml.safe_dump(settings, sort_keys=False, default_flow_style=None, width=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write into this folder instead")
    args = parser.parse_args()
    folder = args.out or HERE
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.yaml"):
        old.unlink()
    order = 0
    for models in BLOCKS:
        for seed in SEEDS:
            order += 1
            for model in models:
                for variant in ("baseline", "llmkt"):
                    for sparse in (False, True):
                        name = f"{order:02d}_s{seed}_{model.lower()}_{'sparse_' if sparse else ''}{variant}.yaml"
                        (folder / name).write_text(experiment(model, variant, seed, sparse))
    print(f"wrote {len(list(folder.glob('*.yaml')))} experiments to {folder}")


if __name__ == "__main__":
    main()
