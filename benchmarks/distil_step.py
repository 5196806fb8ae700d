"""What one distilled training batch costs over a plain one, and where that time goes.

    .venv/bin/python benchmarks/distil_step.py [--repeats 400] [--batches 256 2048]

``overhead.py`` times whole epochs; at NeuMF's small step the data loader, Adam and the machine's noise are as
large as the difference it looks for. This times one fixed training batch of NeuMF on ml-100k (``overhead.py``'s
case: hook ``mlp_layers.mlp_layers.1``, ``NeumfUserRMSE`` on 64-d profiles, alpha 0.5), forward and backward only,
in one process, the variants in alternation, median of ``--repeats`` per variant:

- ``plain``: ``model.calculate_loss(batch).backward()``;
- ``wrapped``: ``distiller(batch).backward()``: hooks, the loss, the weighting, the bookkeeping;
- ``loss ops``: the distillation's tensor operations alone, forward and backward, on a detached copy of the hooked
  output (gather the batch users' rows, slice, MSE, root, the weighting) in a function with no wrapper around it;
- ``plain step`` / ``wrapped step``: a whole optimizer step (zero_grad, forward, backward, Adam's step), the
  data loading being all an epoch adds.

``wrapped - plain - loss ops`` is then what the wrapper's Python adds. The epoch-level ratio of ``overhead.py`` is
about ``(step + extra) / step`` where a step also holds the data loading and Adam (measured there).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return times


def measure(batch, repeats):
    import torch
    from overhead import build

    loader, built = build("NeuMF", batch, 1, ("plain", "wrapped"))
    interaction = next(iter(loader))
    plain_model = built["plain"][0].model
    trainer = built["wrapped"][0]
    distiller = trainer.distiller
    model, loss = distiller.model, distiller.loss
    with distiller.hooks.capture() as io:
        model.calculate_loss(interaction)
    hidden = io[distiller.hooked[0].path]["output"][0].detach().clone().requires_grad_(True)
    users = interaction[loss.uid_field]
    alpha = distiller.alpha
    model_loss = torch.tensor(0.5, requires_grad=True)

    def plain():
        plain_model.zero_grad(set_to_none=True)
        plain_model.calculate_loss(interaction).backward()

    def wrapped():
        model.zero_grad(set_to_none=True)
        distiller(interaction).backward()

    plain_optimizer, optimizer = built["plain"][0].optimizer, trainer.optimizer

    def plain_step():
        plain_optimizer.zero_grad()
        plain_model.calculate_loss(interaction).backward()
        plain_optimizer.step()

    def wrapped_step():
        optimizer.zero_grad()
        distiller(interaction).backward()
        optimizer.step()

    def loss_ops():  # NeumfUserRMSE's arithmetic and the weighting, without the wrapper
        target = loss.llm_user_emb.index_select(0, users)
        distil = torch.sqrt(torch.nn.functional.mse_loss(hidden[:, : target.shape[1]], target) + 1e-12)
        ((1.0 - alpha) * model_loss + alpha * distil).backward()

    functions = {"plain": plain, "wrapped": wrapped, "loss ops": loss_ops, "plain step": plain_step,
                 "wrapped step": wrapped_step}
    for function in functions.values():  # warm-up
        timed(function, 20)
    runs = {name: [] for name in functions}
    for _ in range(repeats // 20):  # alternate in rounds of 20, so that drift of the machine hits all alike
        for name, function in functions.items():
            runs[name] += timed(function, 20)
    distiller.pop_epoch_losses()
    return {name: statistics.median(times) * 1e6 for name, times in runs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=400, help="timed batches per variant")
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 2048], help="batch sizes")
    args = parser.parse_args(argv)
    print("NeuMF on ml-100k, one fixed batch, forward + backward; median microseconds per batch")
    print(f"{'batch':>6} {'plain':>9} {'wrapped':>9} {'extra':>8} {'loss ops':>9} {'wrapper Python':>15} "
          f"{'plain step':>11} {'wrapped step':>13} {'step ratio':>11}")
    for batch in args.batches:
        us = measure(batch, args.repeats)
        extra = us["wrapped"] - us["plain"]
        print(f"{batch:>6} {us['plain']:>9.0f} {us['wrapped']:>9.0f} {extra:>8.0f} {us['loss ops']:>9.0f} "
              f"{extra - us['loss ops']:>15.0f} {us['plain step']:>11.0f} {us['wrapped step']:>13.0f} "
              f"{us['wrapped step'] / us['plain step']:>11.3f}")


if __name__ == "__main__":
    main()
