"""How cost grows with the data: each step of the pipeline timed on synthetic datasets of 10^5 ... 10^7 interactions.

    .venv/bin/python benchmarks/scale.py --sizes 100000 1000000 10000000 [--out docs/results/scale]
    .venv/bin/python benchmarks/scale.py --report                      # table and plot from the results so far

The datasets have the shape of real ones: Zipf-distributed user activity and item popularity (exponents near
MovieLens'), ``users = items = size / 100``, ratings 1-5 and timestamps; a user
table (age, gender, occupation) and an item table (title, release year, genres) written as RecBole atomic files,
so that profiles have the text MovieLens gives them (a size is a target: duplicates are drawn again; no user
rates more than about a fifth of the items).
Each size runs in a process of its own, step after step (training and evaluation come before the profile steps,
the slowest at large sizes, so that a size stopped by ``--budget`` keeps them; they distil seeded random profiles):
write the atomic files; ``build_dataset`` (with the per-process dataset cache) and ``prepare_data`` (RS split);
template profiles (``profile_texts``); TF-IDF encoding of all profiles; MiniLM encoding of a sample of
``MINILM_SAMPLE`` profiles, extrapolated to all of them (the model's loading is not counted); the profile JSON
written as ``build_profiles`` writes it, then JSON -> aligned matrix (``read_profile_matrix`` + ``align_rows``);
``reduce_matrix`` by PCA and by UMAP (64 -> 16 columns; UMAP's import and numba compilation are not counted);
for NeuMF and LightGCN, one training epoch plain and one distilled (wrapper + hooked layer + loss on 16-d
profiles): the first ``BATCHES`` batches are timed (after one warm-up batch) and the time per batch is
extrapolated to the epoch's batches, stated as such; the test evaluation (uni100, per-user metrics kept, as
``test_eval`` does); one journal append to a journal holding ``size / 100`` rows; ``report.py`` over that journal.

Memory: a thread samples the process's resident set every 20 ms; a step's peak is the highest sample during it,
so it includes what earlier steps of the same process still hold (the dataset, above all). ``peak_rss_mb`` of the
process (``ru_maxrss``) is recorded too. Results accumulate in ``<out>/results.json`` (one run per size, the
latest kept); ``--report`` writes ``<out>/scale.md`` (table, fitted exponents) and ``<out>/scale.png`` (log-log).
The exponent of a step is the least-squares slope of log(time) on log(interactions) over the sizes measured, for
CPU time (process and children, all threads: what the step costs, less sensitive to other load on a shared
machine) and for wall time.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MINILM_SAMPLE = 300
BATCHES = 20
GRAPH_BATCHES = 5  # LightGCN: each batch propagates over the whole graph (seconds at 10^7)
BATCH_SIZE = 2048
LARGE_BATCH = 16384  # LightGCN's propagation is per batch: a larger batch is fewer propagations an epoch
WIDTH = 16
OCCUPATIONS = ["student", "engineer", "artist", "writer", "doctor", "lawyer", "educator", "retired", "other"]
GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
WORDS = ["night", "city", "love", "war", "star", "dark", "river", "king", "summer", "dream", "blood", "last", "road",
         "ghost", "island", "secret", "fire", "heart", "house", "storm", "world", "game", "dance", "lost"]
MODELS = {
    "NeuMF": {"settings": {"mf_embedding_size": 32, "mlp_embedding_size": 32, "mlp_hidden_size": [64, 32]},
              "loss": "NeumfUserRMSE", "layer": "mlp_layers.mlp_layers.1"},
    "LightGCN": {"settings": {"embedding_size": 32, "n_layers": 2}, "loss": "LightGCNUserRMSE", "layer": 1},
}


# --- the synthetic dataset ----------------------------------------------------------------------------------------


def zipf_weights(count, exponent, rng):
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return rng.permutation(weights / weights.sum())


def capped(weights, cap):
    """Weights no higher than ``cap`` (the rest spread over the others): no user rates nearly every item, which
    RecBole's negative sampling could not serve (real datasets are filtered the same way)."""
    for _ in range(20):
        weights = np.minimum(weights, cap)
        weights = weights / weights.sum()
    return weights


def interactions(size, users, items, rng):
    """About ``size`` distinct (user, item) pairs, users and items Zipf-distributed; every user has 5 or more."""
    user_p, item_p = capped(zipf_weights(users, 0.8, rng), 0.2 * items / size), zipf_weights(items, 0.9, rng)
    pairs = np.unique(np.repeat(np.arange(users), 5) * items + rng.choice(items, 5 * users, p=item_p))
    while len(pairs) < size:  # duplicates (a user rating an item twice) are dropped and drawn again
        draw = int((size - len(pairs)) * 1.1) + 1
        fresh = rng.choice(users, draw, p=user_p) * items + rng.choice(items, draw, p=item_p)
        pairs = np.unique(np.concatenate([pairs, fresh]))
    return pairs // items, pairs % items


def write_dataset(folder, name, size, seed=0):
    """The atomic files ``<folder>/<name>/<name>.inter/.user/.item``; returns (users, items, interactions)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    users, items = size // 100, max(500, size // 100)
    user, item = interactions(size, users, items, rng)
    target = Path(folder) / name
    target.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"user_id:token": user + 1, "item_id:token": item + 1,
                  "rating:float": rng.integers(1, 6, len(user)),
                  "timestamp:float": rng.integers(874_724_710, 893_286_638, len(user))}).to_csv(
        target / f"{name}.inter", sep="\t", index=False)
    pd.DataFrame({"user_id:token": np.arange(1, users + 1), "age:token": rng.integers(7, 74, users),
                  "gender:token": rng.choice(["M", "F"], users),
                  "occupation:token": rng.choice(OCCUPATIONS, users)}).to_csv(
        target / f"{name}.user", sep="\t", index=False)
    titles = [" ".join(rng.choice(WORDS, rng.integers(1, 4))).title() for _ in range(items)]
    genres = [" ".join(rng.choice(GENRES, rng.integers(1, 4), replace=False)) for _ in range(items)]
    pd.DataFrame({"item_id:token": np.arange(1, items + 1), "movie_title:token_seq": titles,
                  "release_year:token": rng.integers(1930, 1999, items), "class:token_seq": genres}).to_csv(
        target / f"{name}.item", sep="\t", index=False)
    return users, items, len(user)


# --- measuring ----------------------------------------------------------------------------------------------------


def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def cpu_seconds():
    """CPU time of this process (all its threads) and of its finished children (report.py)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Meter:
    """Times steps and samples the resident set every 20 ms; prints one JSON line per step."""

    def __init__(self, size):
        self.size, self.peak, self.running = size, 0.0, True
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.02)

    def step(self, name, action, scale=1.0, note="", fixed=(0.0, 0.0)):
        """Run ``action()``, report its time times ``scale`` (an extrapolation when not 1) plus ``fixed`` (wall,
        CPU seconds measured once, not extrapolated) and its peak RSS."""
        self.peak = rss_mb()
        started, cpu = time.perf_counter(), cpu_seconds()
        value = action()
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        self.peak = max(self.peak, rss_mb())
        print(json.dumps({"size": self.size, "step": name, "seconds": seconds * scale + fixed[0],
                          "cpu_s": cpu * scale + fixed[1],
                          "measured_s": seconds, "peak_mb": round(self.peak), "note": note,
                          "load": round(os.getloadavg()[0], 1)}), flush=True)
        return value


# --- the steps ----------------------------------------------------------------------------------------------------


def make_config(workdir, name, model):
    from utils.config_loading import ExperimentConfig
    from utils.registry import get_model_class

    settings = {"use_gpu": False, "state": "ERROR", "seed": 2020, "reproducibility": True, "epochs": 1,
                "data_path": str(workdir), "checkpoint_dir": str(workdir / "saved"), "show_progress": False,
                "train_batch_size": BATCH_SIZE, "eval_batch_size": 101 * 2048,
                "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"],
                             "user": ["user_id", "age", "gender", "occupation"],
                             "item": ["item_id", "movie_title", "release_year", "class"]},
                "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user", "order": "RO",
                              "mode": "uni100"},
                "metrics": ["NDCG", "Hit", "Recall"], "topk": [10], "valid_metric": "NDCG@10",
                **MODELS[model]["settings"]}
    return ExperimentConfig(model=get_model_class(model), dataset=name, config_dict=settings)


class Limited:
    """The first ``count`` batches of a RecBole loader, or the next ``count`` from ``iterator`` (an iterator of that
    loader, an epoch under way); its other attributes are the loader's (``evaluate`` reads a few of them)."""

    def __init__(self, loader, count, iterator=None):
        self.loader, self.count, self.iterator = loader, count, iterator

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __len__(self):
        return self.count

    def __iter__(self):
        for number, batch in enumerate(self.loader if self.iterator is None else self.iterator):
            yield batch
            if number + 1 >= self.count:
                return


def train_steps(meter, model_name, config, data, profiles):
    """One epoch plain and distilled, with RecBole's dense update and with ``sparse_embeddings`` in alternation (their
    ratio is the trustworthy figure on a shared machine), each timed on BATCHES batches and extrapolated; for
    LightGCN one more plain epoch at LARGE_BATCH; then the test evaluation."""
    from recbole.utils import init_seed

    import models.losses as losses
    from utils.trainer import build_trainer, use_sparse_tables
    from utils.wrapper import Distiller

    trainer = None
    modes = ("plain", "plain sparse", "distilled", "distilled sparse") if model_name == "NeuMF" else (
        "plain", "distilled")  # LightGCN's tables take whole-table gradients: sparse_embeddings keeps them dense
    most = BATCHES if model_name == "NeuMF" else GRAPH_BATCHES
    for mode in modes:
        init_seed(2020, True)
        if mode == "plain":  # measured once: a graph model builds its normalised adjacency here
            model = meter.step(f"build model {model_name}", lambda: data_model(model_name, config, data))
        else:
            model = data_model(model_name, config, data)
        distiller = None
        if mode.startswith("distilled"):
            loss = getattr(losses, MODELS[model_name]["loss"])(model, data.train_dataset, user_emb=profiles,
                                                               particular=True)
            distiller = Distiller(model, loss, alpha=0.5)
            distiller.set_outputs([MODELS[model_name]["layer"]])
        trainer = build_trainer(config, model, f"scale-{mode.replace(' ', '-')}", distiller=distiller)
        if mode.endswith("sparse"):
            use_sparse_tables(trainer)
        time_epoch(meter, f"train 1 epoch {model_name} {mode}", trainer, data.train_parts[0], most)
    if model_name == "LightGCN":
        init_seed(2020, True)
        part = data.train_parts[0]
        config["train_batch_size"] = LARGE_BATCH
        loader = type(part)(config, part.dataset, part._sampler, shuffle=True)
        config["train_batch_size"] = BATCH_SIZE
        big = build_trainer(config, data_model(model_name, config, data), "scale-large-batch")
        time_epoch(meter, f"train 1 epoch {model_name} plain, batch {LARGE_BATCH}", big, loader, 2)
    trainer.collect_per_user = True
    batches = len(data.test)
    count = min(batches, BATCHES)
    note = f"{count} of {batches} batches timed, extrapolated" if count < batches else "whole test split"
    meter.step(f"test eval {model_name} (uni100, per-user)",
               lambda: trainer.evaluate_per_user(Limited(data.test, count), load_best_model=False),
               scale=batches / count, note=note)


def time_epoch(meter, name, trainer, loader, most):
    """The epoch's set-up with its first batch, measured once, then ``most`` batches of the same epoch timed and
    extrapolated to the rest. The set-up is RecBole's shuffle, a permutation of every interaction turned into a
    Python list (about 2 s at 10^7): once an epoch, so it must not be extrapolated per batch as if every batch
    paid it (the runs before 2026-12-06 did, which inflated large sizes' training times)."""
    batches = len(loader)
    count = min(batches - 1, most)
    iterator = iter(loader)
    started, cpu = time.perf_counter(), cpu_seconds()
    trainer._train_epoch(Limited(loader, 1, iterator), 0)  # set-up and first batch (the warm-up)
    fixed = (time.perf_counter() - started, cpu_seconds() - cpu)
    note = (f"set-up and first batch measured, {count} of {batches} batches timed, extrapolated" if count < batches - 1
            else "whole epoch")
    meter.step(name, lambda: trainer._train_epoch(Limited(loader, count, iterator), 1),
               scale=(batches - 1) / max(count, 1), fixed=fixed, note=note)


def data_model(model_name, config, data):
    from utils.registry import get_model_class

    return get_model_class(model_name)(config, data.train_dataset)


def profile_steps(meter, config, data, workdir):
    """Texts, TF-IDF, MiniLM (sampled), the JSON file, JSON -> matrix; returns the aligned [users, 64] matrix."""
    from utils.encoders import encode_minilm, encode_tfidf, load_minilm
    from utils.profiles import ProfileSpec, profile_texts, training_history, with_ratings, write_profiles

    spec = ProfileSpec.from_config({"to": "users.json", "encoder": "tfidf", "dim": 64})
    history = with_ratings(training_history(data), config, spec.fields)
    ids, texts, prompts, extras = meter.step("profiles: template texts",
                                             lambda: profile_texts(spec, config, data, history))
    descriptions = [texts[i] for i in ids]
    vectors = meter.step("encode: TF-IDF (64-d)", lambda: encode_tfidf(descriptions, dim=64, seed=0))
    load_minilm()
    sample = descriptions[:MINILM_SAMPLE]
    meter.step("encode: MiniLM", lambda: encode_minilm(sample, progress=False), scale=len(ids) / len(sample),
               note=f"{len(sample)} profiles timed, extrapolated; model load not counted")
    path = workdir / "users.json"
    meter.step("profiles: JSON write", partial(write_profiles, path, ids, descriptions, prompts, vectors, extras))
    del prompts, extras, texts
    return meter.step("JSON -> matrix", lambda: json_to_matrix(path, data))


def json_to_matrix(path, data):
    from utils.embeddings import align_rows, read_profile_matrix

    dataset = data.dataset
    ids, matrix = read_profile_matrix(path)
    tokens = [str(t) for t in dataset.field2id_token[dataset.uid_field][1:]]
    return align_rows(ids, matrix, tokens)


def reduce_steps(meter, matrix):
    from utils.embeddings import reduce_matrix

    meter.step("reduce_dim: PCA 64->16", lambda: reduce_matrix(matrix, WIDTH, "pca"))
    import umap  # noqa: F401  (the import compiles with numba: not counted)

    meter.step("reduce_dim: UMAP 64->16", lambda: reduce_matrix(matrix, WIDTH, "umap"))


def journal_steps(meter, workdir, rows):
    """One append to a journal of ``rows`` rows, then report.py over it."""
    import pandas as pd

    from utils.journal import ExperimentsJournal, JournalRecord

    record = JournalRecord(workdir / "scale.yaml", "scale")
    record.set("model", "NeuMF")
    record.set_part("best_test_res", {"ndcg@10": 0.1, "hit@10": 0.2, "recall@10": 0.05})
    record.set_part("loss_name", "")
    record.finish("done")
    row = record.row()
    frame = pd.DataFrame([row] * rows)
    frame["config"] = [f"exp{k % 1000}.yaml" for k in range(rows)]
    frame["seed"] = [k // 1000 for k in range(rows)]
    frame["variant"] = np.where(np.arange(rows) % 2 == 0, "baseline", "llmkt")
    frame["train_0:best_test_res"] = [json.dumps({"ndcg@10": 0.1 + k % 7 / 100, "hit@10": 0.2, "recall@10": 0.05})
                                      for k in range(rows)]
    path = workdir / "journal.csv"
    frame.to_csv(path)
    meter.step(f"journal append ({rows} rows)", lambda: ExperimentsJournal(path).append(row))
    command = [sys.executable, str(ROOT / "report.py"), str(path), "--out", str(workdir / "report"),
               "--curves", "none"]
    meter.step(f"report.py ({rows} rows)", lambda: subprocess.run(command, capture_output=True, check=True,
                                                                  timeout=3600, cwd=workdir))


def run_size(size, workdir, neumf_only=False, skip_profiles=False):
    """All steps for one size, in this process; one JSON line per step on stdout (``neumf_only``: the dataset,
    NeuMF's training and evaluation, nothing else)."""
    import torch

    from utils.data import build_dataset, prepare_data

    workdir.mkdir(parents=True, exist_ok=True)
    meter = Meter(size)
    name = f"synth{size}"
    users, items, count = meter.step("write atomic files", lambda: write_dataset(workdir, name, size))
    print(json.dumps({"size": size, "users": users, "items": items, "interactions": count}), flush=True)
    config = make_config(workdir, name, "NeuMF")
    dataset = meter.step("build_dataset (+ cache)", lambda: build_dataset(config))
    data = meter.step("prepare_data (RS split)", lambda: prepare_data(config, dataset))
    # training first, on seeded random 16-d profiles (the cost does not depend on their values): the profile steps,
    # the slowest at large sizes, come last, so that a size stopped by --budget still has its training steps
    profiles = torch.cat([torch.zeros(1, WIDTH), torch.randn(len(data.dataset.field2id_token["user_id"]) - 1, WIDTH,
                                                             generator=torch.Generator().manual_seed(0))])
    train_steps(meter, "NeuMF", config, data, profiles)
    if neumf_only:
        return finish(meter, size)
    config = make_config(workdir, name, "LightGCN")
    lightgcn = prepare_data(config, build_dataset(config))  # the cached dataset: LightGCN's own split and loaders
    train_steps(meter, "LightGCN", config, lightgcn, profiles)
    del lightgcn
    journal_steps(meter, workdir, max(100, size // 100))
    if skip_profiles:
        return finish(meter, size)
    matrix = profile_steps(meter, make_config(workdir, name, "NeuMF"), data, workdir)
    reduce_steps(meter, matrix)
    finish(meter, size)


def finish(meter, size):
    meter.running = False
    print(json.dumps({"size": size, "process_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                                              / 1024)}), flush=True)


# --- collecting and reporting -------------------------------------------------------------------------------------


def measure(size, out, log, budget, neumf_only=False, skip_profiles=False):
    """Run one size in a child process (stderr to ``log``); merge each step's line into results.json as it comes,
    so that a size stopped at ``budget`` seconds keeps the steps it finished."""
    with tempfile.TemporaryDirectory() as tmp, open(log, "a") as sink:
        command = [sys.executable, __file__, "--run", str(size), "--workdir", tmp] + (["--neumf-only"] * neumf_only)
        command += ["--skip-profiles"] * skip_profiles
        started = time.time()
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=sink, text=True, cwd=tmp)
        timer = threading.Timer(budget, child.kill)
        timer.start()
        lines = []
        for line in child.stdout:
            sink.write(line)
            if line.startswith("{"):
                lines.append(json.loads(line))
                save(out, size, {"lines": lines, "wall_s": round(time.time() - started), "exit": None})
        code = child.wait()
        timer.cancel()
    stopped = f"stopped after {budget} s" if code and time.time() - started >= budget else None
    save(out, size, {"lines": lines, "wall_s": round(time.time() - started), "exit": code, "stopped": stopped})
    return code


def save(out, size, entry):
    results = load_results(out)
    results[str(size)] = entry
    (out / "results.json").write_text(json.dumps(results, indent=1))


def load_results(out):
    path = out / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def table(results):
    """{step: {size: line}}, the sizes in order, and each size's dataset line."""
    steps, shapes = {}, {}
    sizes = sorted(int(s) for s in results)
    for size in sizes:
        for line in results[str(size)]["lines"]:
            if "step" in line:  # the journal's steps name its rows: size / 100 at every size
                steps.setdefault(re.sub(r"\(\d+ rows\)", "(size/100 rows)", line["step"]), {})[size] = line
            elif "users" in line:
                shapes[size] = line
    return steps, sizes, shapes


def exponent(points, key):
    """Least-squares slope of log(points[size][key]) on log(size); None with fewer than two sizes."""
    sizes = sorted(points)
    if len(sizes) < 2:
        return None
    y = np.log10([max(points[s][key], 1e-3) for s in sizes])
    return float(np.polyfit(np.log10(sizes), y, 1)[0])


def _slope(value):
    return "-" if value is None else f"{value:.2f}"


def write_report(out):
    results = load_results(out)
    steps, sizes, shapes = table(results)
    lines = ["| step | " + " | ".join(f"{s:.0e}: wall s / CPU s / peak MB" for s in sizes)
             + " | exponent (CPU) | exponent (wall) | note |", "|" + "---|" * (len(sizes) + 4)]
    for step, points in steps.items():
        cells = [f"{points[s]['seconds']:.3g} / {points[s]['cpu_s']:.3g} / {points[s]['peak_mb']}" if s in points
                 else "-" for s in sizes]
        notes = sorted({re.sub(r" of \d+ ", " of all ", points[s]["note"]) for s in points if points[s]["note"]})
        lines.append(f"| {step} | " + " | ".join(cells) + f" | {_slope(exponent(points, 'cpu_s'))} | "
                     f"{_slope(exponent(points, 'seconds'))} | {'; '.join(notes)} |")
    shape = ", ".join(f"{s:.0e}: {shapes[s]['users']:,} users, {shapes[s]['items']:,} items, "
                      f"{shapes[s]['interactions']:,} interactions" for s in sizes if s in shapes)
    walls = ", ".join(f"{s:.0e}: {results[str(s)]['wall_s']} s" + (f" ({results[str(s)]['stopped']})"
                                                                   if results[str(s)].get("stopped") else "")
                      for s in sizes)
    peaks = ", ".join(f"{s:.0e}: {line['process_peak_mb']} MB" for s in sizes
                      for line in results[str(s)]["lines"] if "process_peak_mb" in line)
    loads = ", ".join(f"{s:.0e}: {load_range(results[str(s)]['lines'])}" for s in sizes
                      if any("load" in line for line in results[str(s)]["lines"]))
    (out / "scale.md").write_text("\n".join([f"Datasets: {shape}.", "", *lines, "", f"Wall time per size: {walls}.",
                                             f"Process peak RSS (ru_maxrss): {peaks or '-'}.",
                                             f"Load average (1 min, at the end of each step; 2 cores): {loads or '-'}.",
                                             ""]))
    plot(steps, out / "scale.png")
    print("\n".join(lines))


def load_range(lines):
    loads = [line["load"] for line in lines if "load" in line]
    return f"{min(loads)}-{max(loads)}"


def plot(steps, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(13, 7))
    for number, (step, points) in enumerate(steps.items()):
        sizes = sorted(points)
        label = f"{step} ({_slope(exponent(points, 'cpu_s'))})"
        axis.plot(sizes, [max(points[s]["cpu_s"], 1e-3) for s in sizes], marker="os^"[number // 10],
                  linestyle=["-", "--", ":"][number // 10], label=label)
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("interactions")
    axis.set_ylabel("CPU seconds (process and children, all threads)")
    axis.set_title("CPU cost per step vs dataset size (fitted log-log exponent in brackets)")
    axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="interactions, e.g. 100000 1000000")
    parser.add_argument("--out", default=str(ROOT / "docs" / "results" / "scale"), help="results folder")
    parser.add_argument("--report", action="store_true", help="only write the table and plot from results.json")
    parser.add_argument("--budget", type=int, default=6 * 3600, help="seconds a size may take before it is stopped")
    parser.add_argument("--neumf-only", action="store_true", help="the dataset, NeuMF's training and evaluation only")
    parser.add_argument("--skip-profiles", action="store_true", help="leave out the profile steps")
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_size(args.run, Path(args.workdir), args.neumf_only, args.skip_profiles)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    code = 0
    for size in args.sizes:
        code = measure(size, out, out / "scale.log", args.budget, args.neumf_only,
                       args.skip_profiles) or code
    write_report(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
