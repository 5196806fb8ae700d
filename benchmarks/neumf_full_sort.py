"""NeuMF's full-ranking evaluation: RecBole's pair-by-pair scorer against ``neumf_full_sort: parts`` (models/neumf.py).

    .venv/bin/python benchmarks/neumf_full_sort.py [--epochs 5] [--repeats 5] [--threads 1]

Trains the audit's NeuMF (64-wide embeddings, MLP [128, 64]) on ml-100k for a few epochs, then evaluates the
validation split by full ranking with each scorer in alternation (so that a busy machine slows both alike) and
prints the median seconds of each, their ratio, the largest difference of any score, how many users get the same
top-10 from both and whether RecBole's metrics agree.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recbole.data.interaction import Interaction  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

from utils.config_loading import ExperimentConfig  # noqa: E402
from utils.data import build_dataset, prepare_data  # noqa: E402
from utils.registry import get_model_class  # noqa: E402

SETTINGS = {"mf_embedding_size": 64, "mlp_embedding_size": 64, "mlp_hidden_size": [128, 64], "dropout_prob": 0.1,
            "learning_rate": 0.001, "train_batch_size": 2048, "eval_batch_size": 409600, "seed": 1,
            "reproducibility": True, "use_gpu": False, "show_progress": False, "state": "ERROR",
            "metrics": ["Recall", "MRR", "NDCG", "Hit", "Precision"], "topk": [10], "valid_metric": "NDCG@10",
            "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO", "mode": "full"},
            "neumf_full_sort": "parts"}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="training epochs before measuring (default 5)")
    parser.add_argument("--repeats", type=int, default=5, help="evaluations per scorer (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as one --workers slot)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    model_class = get_model_class("NeuMF")
    config = ExperimentConfig(model=model_class, dataset="ml-100k", config_dict={**SETTINGS, "epochs": args.epochs})
    init_seed(config["seed"], True)
    data = prepare_data(config, build_dataset(config))
    init_seed(config["seed"], True)
    model = model_class(config, data.train_dataset)
    trainer = Trainer(config, model)
    started = time.perf_counter()
    for epoch in range(args.epochs):
        trainer._train_epoch(data.train_parts[-1], epoch, show_progress=False)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - started:.1f} s; "
          f"{data.train_dataset.user_num - 1} users x {data.train_dataset.item_num - 1} items")

    model.eval()
    seconds, results = {"pairs": [], "parts": []}, {}
    for _ in range(args.repeats):
        for scorer in ("pairs", "parts"):
            model.full_sort_scorer = scorer
            started = time.perf_counter()
            results[scorer] = trainer.evaluate(data.valid, load_best_model=False, show_progress=False)
            seconds[scorer].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, values in seconds.items():
        print(f"{name:>5}: median {medians[name]:.2f} s per full-ranking validation "
              f"(all: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"parts is {medians['pairs'] / medians['parts']:.1f}x faster (ratio of medians, measured in alternation)")

    users = torch.arange(1, data.train_dataset.user_num)
    n_items = data.train_dataset.item_num
    with torch.no_grad():
        model.full_sort_scorer = "parts"
        parts = model.full_sort_predict(Interaction({model.USER_ID: users})).view(len(users), n_items)
        pairs = torch.cat([model.predict(Interaction({
            model.USER_ID: chunk.repeat_interleave(n_items), model.ITEM_ID: torch.arange(n_items).repeat(len(chunk))}))
            for chunk in users.split(128)]).view(len(users), n_items)
    same_top = (parts[:, 1:].topk(10).indices == pairs[:, 1:].topk(10).indices).all(dim=1).sum().item()
    print(f"largest score difference {(parts - pairs).abs().max().item():.1e}; the same top-10 for {same_top} of "
          f"{len(users)} users; validation metrics identical: {results['pairs'] == results['parts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
