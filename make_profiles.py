"""Write user (or item) profiles for an experiment's training split and encode them.

    python make_profiles.py --config experiments/neumf/neumf_ml100k.yaml [--source template|llm]
                            [--encoder minilm|tfidf|openai] [--entity user|item] [--out NAME.json]
                            [--history train|all]

The experiment's split (dataset, filters, seed, eval_args) is reproduced exactly, and profiles are written from
its training interactions only (``--history all``: from every interaction, leaky on purpose, for an audit).
Output: ``<embeddings_path>/<dataset>/<NAME>.json`` (a list of ``{id, description, prompt, embedding}``) and
``<NAME>.meta.json`` (source, encoder, history, split fingerprint).
A scenario reads them with ``llm_config.preprocess_from_json`` (or builds them itself with ``build_profiles``).
"""

import argparse
import json
import sys
import time

from utils.errors import UserError


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="make_profiles.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the experiment .yaml whose split the profiles follow")
    parser.add_argument("--source", choices=["template", "llm"], default=None,
                        help="who writes the text (default: the config's build_profiles, else template)")
    parser.add_argument("--encoder", choices=["minilm", "tfidf", "openai"], default=None,
                        help="text encoder (default: the config's build_profiles, else minilm)")
    parser.add_argument("--entity", choices=["user", "item"], default=None, help="profiles of users or items")
    parser.add_argument("--out", default=None, help="output file name (.json) in the dataset's embedding folder")
    parser.add_argument("--dim", type=int, default=None, help="tfidf: columns after TruncatedSVD (default 256)")
    parser.add_argument("--history", choices=["train", "all"], default=None,
                        help="interactions the profiles are written from: train (default) or all, validation and "
                             "test included: LEAKY on purpose, for an audit (labelled in the metadata and journal)")
    endpoint = parser.add_argument_group("OpenAI-compatible endpoint (source llm / encoder openai)")
    endpoint.add_argument("--base-url", help="e.g. http://127.0.0.1:8000/v1")
    endpoint.add_argument("--model", help="chat model that writes the profiles")
    endpoint.add_argument("--embedding-model", help="embedding model (encoder openai)")
    endpoint.add_argument("--api-key-env", default=None, help="environment variable holding the API key")
    endpoint.add_argument("--concurrency", type=int, default=None, help="requests in flight at once (default 4)")
    return parser.parse_args(argv)


def spec_from(args, llm_config):
    """The profile spec: the config's build_profiles (if any), overridden by the flags."""
    from utils.profiles import ProfileSpec

    specs = llm_config.build_profiles or [{}]
    wanted = [s for s in specs if s.get("entity", "user") == (args.entity or "user")] if args.entity else specs
    raw = dict((wanted or [{}])[0])
    for key in ("source", "encoder", "entity", "dim", "history"):
        if getattr(args, key) is not None:
            raw[key] = getattr(args, key)
    llm = dict(raw.get("llm") or {})
    for flag, key in (("base_url", "base_url"), ("model", "model"), ("embedding_model", "embedding_model"),
                      ("api_key_env", "api_key_env"), ("concurrency", "concurrency")):
        if getattr(args, flag) is not None:
            llm[key] = getattr(args, flag)
    raw["llm"] = llm
    entity = raw.get("entity", "user")
    if args.out:
        raw["to"] = args.out if args.out.endswith(".json") else f"{args.out}.json"
    elif "to" not in raw or args.entity or args.source or args.encoder or args.history:
        leaky = "_leaky" if raw.get("history") == "all" else ""
        raw["to"] = f"{entity}_profiles_{raw.get('source', 'template')}_{raw.get('encoder', 'minilm')}{leaky}.json"
    return ProfileSpec.from_config(raw)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        from recbole.utils import init_seed

        from utils.data import build_dataset, prepare_data
        from utils.embeddings import embeddings_dir
        from utils.experiment import check_experiment
        from utils.profiles import build_profiles

        started = time.time()
        checked = check_experiment(args.config, outputs=False)  # writes profiles only: no journal, no checkpoint
        settings, config = checked.settings, checked.config
        spec = spec_from(args, settings.llm_config)
        config["state"] = "WARNING"
        init_seed(config["seed"], config["reproducibility"])
        dataset = build_dataset(config)
        data = prepare_data(config, dataset, settings.add_train_split, settings.add_train_shuffle,
                            settings.cold_start)
        folder = embeddings_dir(settings.llm_config.embeddings_path, config["dataset"])
        meta = build_profiles(spec, config, data, folder)
    except UserError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return 2
    out = folder / spec.to
    with open(out, encoding="utf-8") as fh:
        first = json.load(fh)[0]
    leaky = ", LEAKY: history all" if spec.leaky else ""
    print(f"wrote {meta['count']} {spec.entity} profiles ({spec.source} + {spec.encoder}{leaky}, {meta['dim']}-d) "
          f"to {out}")
    if spec.leaky:
        print(f"LEAKY on purpose: written from {meta['profile_interactions']} interactions, validation and test "
              "included; a scenario reads them only with build_profiles: {history: all, ...}")
    print(f"split fingerprint {meta['split']['fingerprint']} ({meta['split']['train_interactions']} training "
          f"interactions); texts {meta['seconds']['texts']}s, encoding {meta['seconds']['encode']}s, "
          f"total {time.time() - started:.1f}s")
    if meta.get("note"):
        print(meta["note"])
    print(f"example ({spec.entity} {first['id']}): {first['description']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
