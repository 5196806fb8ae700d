"""User and item profiles written from the experiment's *training* interactions, then encoded.

Profiles are built on exactly the split the experiment trains on (same dataset, filters, seed and ``eval_args``),
from training interactions only: a profile written from a user's whole history would describe the very items the
test split holds out, and part of any measured gain would be leakage.

Two sources write the text: ``template`` (deterministic sentences from the data: demographics, favourite and
disliked genres with their shares, release decades, top- and low-rated titles) and ``llm`` (an OpenAI-compatible
endpoint given a prompt built from the same facts). The output is the upstream JSON schema, a list of
``{id, description, prompt, embedding}`` (user profiles add ``history``: the raw item ids they were written
from), plus ``<name>.meta.json`` saying which source, encoder and split built it.
"""

import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .data import inter_files
from .embeddings import convert_profiles, embeddings_dir, random_matrix, save_tensor
from .encoders import ENCODERS, encode
from .errors import UserError
from .journal import locked
from .llm_client import LLM_OPTIONS
from .params import ANY, Kind, Param, Rule, Schema, int_from, one_of

logger = logging.getLogger(__name__)

TEMPLATE_VERSION = 1
SOURCES = ("template", "llm")
ENTITIES = ("user", "item")
HISTORIES = ("train", "all")  # 'all': leaky profiles, written from validation and test interactions too
SYSTEM_PROMPT = (
    "You write short, factual profiles of the users and items of a recommender system from their interaction "
    "history. Describe tastes and character; do not invent facts beyond the data given."
)


@dataclass
class ProfileFields:
    """Which atomic-file fields carry text. Defaults fit MovieLens (ml-100k, ml-1m)."""

    user: list = field(default_factory=lambda: ["age", "gender", "occupation"])
    title: str = "movie_title"
    year: str = "release_year"
    genres: str = "class"
    rating: str = "rating"
    time: str = "timestamp"
    noun: str = "movie"
    like_threshold: float = 4.0  # ratings at or above count as liked
    dislike_threshold: float = 2.0  # ratings at or below count as disliked


# --- reading the data ---------------------------------------------------------------------------------------------


def read_atomic(path):
    """A RecBole atomic file as a DataFrame of strings, columns named without their ``:type`` suffix."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3, encoding="utf-8")
    frame.columns = [column.split(":")[0] for column in frame.columns]
    return frame


def atomic_path(config, suffix):
    return Path(config["data_path"]) / f"{config['dataset']}.{suffix}"


def training_history(data):
    """The whole training set as raw tokens: a DataFrame with columns ``user``, ``item``."""
    return _history_frame(data.dataset, data.train_dataset.inter_feat)


def full_history(data):
    """Every interaction of the (filtered) dataset, validation and test included, as raw tokens: what a *leaky*
    profile (``history: all``) is written from. Only ever used when a scenario asks for it."""
    return _history_frame(data.dataset, data.dataset.inter_feat)


def _history_frame(dataset, inter):
    users = dataset.id2token(dataset.uid_field, inter[dataset.uid_field].numpy())
    items = dataset.id2token(dataset.iid_field, inter[dataset.iid_field].numpy())
    return pd.DataFrame({"user": np.asarray(users, dtype=str), "item": np.asarray(items, dtype=str)})


def split_fingerprint(history):
    """A hash of the training pairs: equal exactly when the training split is."""
    pairs = sorted(zip(history["user"], history["item"], strict=True))
    digest = hashlib.sha256()
    for user, item in pairs:
        digest.update(f"{user}\t{item}\n".encode())
    return digest.hexdigest()[:20]


def with_ratings(history, config, fields, every_file=False):
    """Add ``rating`` and ``time`` from the raw interaction file (RecBole may have turned ratings into labels).

    With benchmark files only the training file is read, unless ``every_file`` (leaky profiles)."""
    files = inter_files(config) if every_file else inter_files(config)[:1]
    raw = pd.concat([read_atomic(path) for path in files], ignore_index=True)
    uid, iid = config["USER_ID_FIELD"], config["ITEM_ID_FIELD"]
    keep = {uid: "user", iid: "item"}
    if fields.rating in raw:
        keep[fields.rating] = "rating"
    if fields.time in raw:
        keep[fields.time] = "time"
    raw = raw[list(keep)].rename(columns=keep)
    for column in ("rating", "time"):
        if column in raw:
            raw[column] = pd.to_numeric(raw[column], errors="coerce")
    raw = raw.groupby(["user", "item"], as_index=False).mean(numeric_only=True) if len(keep) > 2 else raw
    merged = history.merge(raw, on=["user", "item"], how="left")
    for column in ("rating", "time"):
        if column not in merged:
            merged[column] = np.nan
    return merged


def optional_atomic(config, suffix):
    """The dataset's ``.user`` / ``.item`` file as a frame, or None when the dataset has none."""
    path = atomic_path(config, suffix)
    return read_atomic(path) if path.is_file() else None


def item_text_note(config, fields):
    """One line when the dataset has no item text for profiles to name (e.g. RecBole's Amazon ratings files),
    else None."""
    path = atomic_path(config, "item")
    if path.is_file():
        with open(path, encoding="utf-8") as fh:
            columns = {column.split(":")[0] for column in fh.readline().rstrip("\n").split("\t")}
        if {fields.title, fields.genres} & columns:
            return None
        what = f"{path.name} has no {fields.title} or {fields.genres} column"
    else:
        what = f"no {path.name}"
    return (f"profiles: {config['dataset']} has no item text ({what}): profiles name {fields.noun}s by id and "
            "describe only how many, how well and when they were rated (README, 'Item metadata', adds titles)")


def item_table(config, fields):
    """Item id -> title, year, genres (empty when the dataset has no item file)."""
    frame = optional_atomic(config, "item")
    if frame is None:
        return {}
    iid = config["ITEM_ID_FIELD"]
    table = {}
    for row in frame.to_dict("records"):
        genres = row.get(fields.genres, "")
        table[row[iid]] = {
            "title": row.get(fields.title, "").strip(),
            "year": row.get(fields.year, "").strip(),
            "genres": [g for g in genres.split(" ") if g] if genres else [],
        }
    return table


def user_table(config, fields):
    """User id -> the demographic fields present (empty when the dataset has no user file)."""
    frame = optional_atomic(config, "user")
    if frame is None:
        return {}
    uid = config["USER_ID_FIELD"]
    wanted = [f for f in fields.user if f in frame.columns]
    return {row[uid]: {f: row[f] for f in wanted} for row in frame.to_dict("records")}


# --- facts and texts ----------------------------------------------------------------------------------------------


def _title(item, items):
    info = items.get(item)
    if not info or not info["title"]:
        return f"item {item}"
    return f"{info['title']} ({info['year']})" if info["year"] else info["title"]


def _shares(counter, top=3):
    total = sum(counter.values())
    if not total:
        return []
    ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [(name, round(100 * count / total)) for name, count in ranked]


def _decade(year):
    try:
        return f"{int(float(year)) // 10 * 10}s"
    except (TypeError, ValueError):
        return None


def describe_person(attributes):
    """'a 24-year-old man, occupation: technician' from the user file's fields."""
    parts = []
    age, gender = attributes.get("age"), attributes.get("gender")
    noun = {"M": "man", "F": "woman"}.get(gender, "person")
    if age:
        parts.append(f"a {age}-year-old {noun}")
    elif gender:
        parts.append(f"a {noun}")
    for name, value in attributes.items():
        if name not in ("age", "gender") and value:
            parts.append(f"{name.replace('_', ' ')}: {value}")
    return ", ".join(parts)


class Rows:
    """One user's (or item's) interactions as plain columns, in history order: ``items`` (str), ``ratings`` and
    ``times`` (float, NaN where unknown). Profiles are written per user; plain lists keep that a few microseconds
    each instead of a pandas frame's milliseconds (ml-100k: 0.46 s for all users instead of 3.3 s)."""

    __slots__ = ("items", "ratings", "times")

    def __init__(self, items=(), ratings=(), times=()):
        self.items, self.ratings, self.times = list(items), list(ratings), list(times)

    def __len__(self):
        return len(self.items)

    def rated(self):
        """(item, rating, time) of the rows that have a rating."""
        return [(i, r, t) for i, r, t in zip(self.items, self.ratings, self.times, strict=True) if r == r]


def group_rows(history, key):
    """``history`` (columns user, item, rating, time) as {``key`` value: Rows}, each in history order."""
    groups = {}
    columns = (history[key].tolist(), history["item"].tolist(), history["rating"].tolist(), history["time"].tolist())
    for owner, item, rating, moment in zip(*columns, strict=True):
        rows = groups.get(owner)
        if rows is None:
            rows = groups[owner] = Rows()
        rows.items.append(item)
        rows.ratings.append(float(rating))
        rows.times.append(float(moment))
    return groups


def _best_first(entry):
    """Sort key: rating high to low, then time late to early (unknown last), then item id."""
    _, rating, moment = entry
    return (rating != rating, -rating if rating == rating else 0.0, moment != moment,
            -moment if moment == moment else 0.0, entry[0])


def _worst_first(entry):
    """Sort key: rating low to high, then time late to early (unknown last), then item id."""
    _, rating, moment = entry
    return (rating, moment != moment, -moment if moment == moment else 0.0, entry[0])


def _mean(values):
    return float(np.mean(np.asarray(values, dtype=np.float64)))


def user_facts(user, rows, users, items, fields):
    """The facts a user profile states, from that user's training :class:`Rows`."""
    rated = rows.rated()
    liked = [i for i, r, _ in rated if r >= fields.like_threshold] if rated else rows.items
    disliked = [i for i, r, _ in rated if r <= fields.dislike_threshold]
    genre_like = Counter(g for item in liked for g in items.get(item, {}).get("genres", []))
    genre_dislike = Counter(g for item in disliked for g in items.get(item, {}).get("genres", []))
    decades = Counter(d for item in rows.items if (d := _decade(items.get(item, {}).get("year"))))
    ordered = sorted(rated, key=_best_first)
    top = [_title(i, items) for i, r, _ in ordered[:5] if r >= fields.like_threshold]  # liked ones come first
    low = sorted((entry for entry in rated if entry[1] <= fields.dislike_threshold), key=_worst_first)
    ratings = [r for _, r, _ in rated]
    return {
        "id": user,
        "person": describe_person(users.get(user, {})),
        "count": len(rows),
        "mean_rating": _mean(ratings) if rated else None,
        "liked_share": round(100 * (sum(r >= fields.like_threshold for r in ratings) / len(ratings))) if rated
        else None,
        "favourite_genres": _shares(genre_like),
        "disliked_genres": _shares(genre_dislike),
        "decades": _shares(decades),
        "top_rated": top,
        "low_rated": [_title(i, items) for i, _, _ in low[:3]],
        "history": sorted(set(rows.items), key=lambda t: (len(t), t)),
    }


def _listing(pairs, unit="%"):
    return ", ".join(f"{name} ({share}{unit})" for name, share in pairs)


def user_text(facts, fields):
    """The template profile of a user: a few deterministic sentences."""
    noun = fields.noun
    lines = [f"User {facts['id']}" + (f": {facts['person']}." if facts["person"] else ".")]
    rated = f"Rated {facts['count']} {noun}s in the training period"
    if facts["mean_rating"] is not None:
        rated += f", {facts['mean_rating']:.1f} stars on average ({facts['liked_share']}% rated "
        rated += f"{fields.like_threshold:g} or more)"
    lines.append(rated + ".")
    if facts["favourite_genres"]:
        lines.append(f"Favourite genres: {_listing(facts['favourite_genres'])}.")
    if facts["disliked_genres"]:
        lines.append(f"Disliked genres: {_listing(facts['disliked_genres'])}.")
    if facts["decades"]:
        lines.append(f"Preferred release decades: {_listing(facts['decades'])}.")
    if facts["top_rated"]:
        lines.append(f"Top-rated {noun}s: {'; '.join(facts['top_rated'])}.")
    if facts["low_rated"]:
        lines.append(f"Low-rated {noun}s: {'; '.join(facts['low_rated'])}.")
    return " ".join(lines)


def user_prompt(facts, rows, items, fields, limit=60):
    """What the LLM is asked: the same facts, and the rated titles themselves."""
    rated = sorted(zip(rows.items, rows.ratings, rows.times, strict=True), key=_best_first)[:limit]
    history = "\n".join(
        f"- {_title(item, items)}" + (f": {rating:g} stars" if rating == rating else "")
        + (f" [{', '.join(items[item]['genres'])}]" if items.get(item, {}).get("genres") else "")
        for item, rating, _ in rated
    )
    return (
        f"Write a profile of this user's {fields.noun} tastes in 3 to 5 sentences.\n"
        f"Summary: {user_text(facts, fields)}\n"
        f"Rated {fields.noun}s (best first, at most {limit}):\n{history}"
    )


def item_facts(item, rows, items, fields):
    """The facts an item profile states, from that item's training :class:`Rows`."""
    ratings = [r for _, r, _ in rows.rated()]
    info = items.get(item, {})
    return {
        "id": item,
        "title": _title(item, items),
        "genres": info.get("genres", []),
        "count": len(rows),
        "mean_rating": _mean(ratings) if ratings else None,
        "liked_share": round(100 * (sum(r >= fields.like_threshold for r in ratings) / len(ratings))) if ratings
        else None,
    }


def item_text(facts, fields):
    noun = fields.noun.capitalize()
    lines = [f"{noun} {facts['id']}: {facts['title']}."]
    if facts["genres"]:
        lines.append(f"Genres: {', '.join(facts['genres'])}.")
    if not facts["count"]:
        lines.append("Not rated in the training period.")
    elif facts["mean_rating"] is None:
        lines.append(f"Chosen by {facts['count']} users in the training period.")
    else:
        lines.append(f"Rated by {facts['count']} users in the training period, {facts['mean_rating']:.1f} stars on "
                     f"average ({facts['liked_share']}% rated {fields.like_threshold:g} or more).")
    return " ".join(lines)


def item_prompt(facts, fields):
    return (f"Write a description of this {fields.noun} and of the audience it appeals to in 2 to 4 sentences.\n"
            f"Facts: {item_text(facts, fields)}")


# --- building -----------------------------------------------------------------------------------------------------


PROFILE_FIELDS = Schema(tuple(Param(name, ANY) for name in ProfileFields.__dataclass_fields__),
                        where="llm_config.build_profiles.fields", summary="which atomic-file fields carry text")
PROFILE_SPEC = Schema((
    Param("to", Kind(lambda v: isinstance(v, str) and v.endswith(".json") and "/" not in v, "a .json file name"),
          required=True, doc="the JSON written, in the dataset's embedding folder"),
    Param("entity", one_of(*ENTITIES, words="user or item"), default="user", doc="whose profiles"),
    Param("source", one_of(*SOURCES, words="template or llm"), default="template", doc="who writes the text"),
    Param("encoder", Kind(lambda v: v in ENCODERS, "an encoder", f"use one of: {', '.join(ENCODERS)}"),
          default="minilm", doc="who turns the text into a vector"),
    Param("dim", int_from(1, hint="the number of columns the tfidf encoder keeps, e.g. 256 (--dim on "
                                  "make_profiles.py)"), default=256, doc="tfidf only: columns"),
    Param("fields", PROFILE_FIELDS, doc="which atomic-file fields carry text (ProfileFields)"),
    Param("llm", LLM_OPTIONS, doc="the endpoint's options (see build_profiles.llm)"),
    Param("on_other_split", one_of("rebuild", "refuse", words="rebuild or refuse"), default="rebuild",
          doc="existing profiles of another split: rebuild them, or refuse to run"),
    Param("history", Kind(lambda v: v in HISTORIES, "train or all", "train (the default) writes profiles from the "
                          "training split only; all (leaky on purpose, for an audit) from every interaction, "
                          "validation and test included"), default="train",
          doc="the interactions profiles are written from"),
), where="llm_config.build_profiles", rules=(
    Rule(lambda v, c: not (v.get("source") == "llm" or v.get("encoder") == "openai")
         or bool((v.get("llm") or {}).get("base_url")),
         "build_profiles: source llm / encoder openai need llm: {{base_url: ...}}",
         "an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1"),),
    summary="profiles written from the split (make_profiles.py's settings)")


@dataclass
class ProfileSpec:
    """What to build: ``build_profiles`` in llm_config, or make_profiles.py's flags."""

    to: str
    entity: str = "user"
    source: str = "template"
    encoder: str = "minilm"
    dim: int = 256  # tfidf only
    fields: ProfileFields = field(default_factory=ProfileFields)
    llm: dict = field(default_factory=dict)  # LLMClient options: base_url, model, embedding_model, api_key_env...
    on_other_split: str = "rebuild"  # or 'refuse'
    history: str = "train"  # 'all': leaky on purpose (an audit's upper bound), labelled everywhere

    @property
    def leaky(self):
        return self.history == "all"

    def label(self):
        """'template+minilm', with ', leaky (history: all)' for leaky profiles: what the console and journal say."""
        return f"{self.source}+{self.encoder}" + (", leaky (history: all)" if self.leaky else "")

    def check(self):
        """Check every setting against :data:`PROFILE_SPEC` (make_profiles.py's flags build a spec directly); returns
        ``self``."""
        values = {name: getattr(self, name) for name in PROFILE_SPEC.names if name != "fields"}
        PROFILE_SPEC.check(values)
        return self

    @classmethod
    def from_config(cls, raw):
        """One ``build_profiles`` mapping of ``llm_config``, checked, as a spec."""
        raw = {key: value for key, value in PROFILE_SPEC.check(raw).items() if value is not None}
        fields = raw.pop("fields", None) or {}
        return cls(fields=ProfileFields(**fields), **raw)

    def identity(self):
        """What must match for existing profiles to be reused (besides the split)."""
        return {"entity": self.entity, "source": self.source, "encoder": self.encoder,
                "dim": self.dim if self.encoder == "tfidf" else None, "template_version": TEMPLATE_VERSION,
                "fields": asdict(self.fields), "llm_model": self.llm.get("model") if self.source == "llm" else None,
                "embedding_model": self.llm.get("embedding_model") if self.encoder == "openai" else None,
                "history": self.history}


def meta_path(json_path):
    json_path = Path(json_path)
    return json_path.with_name(f"{json_path.stem}.meta.json")


def split_description(config, fingerprint, history):
    return {
        "dataset": config["dataset"],
        "fingerprint": fingerprint,
        "seed": config["seed"],
        "eval_args": config["eval_args"],
        "user_filter": config["user_inter_num_interval"],
        "item_filter": config["item_inter_num_interval"],
        "train_interactions": int(len(history)),
    }


def profile_texts(spec, config, data, history):
    """(ids in RecBole order, texts or prompts, extra fields per id) for the entity."""
    fields = spec.fields
    items = item_table(config, fields)
    dataset = data.dataset
    if spec.entity == "user":
        users = user_table(config, fields)
        ids = [str(t) for t in dataset.field2id_token[dataset.uid_field][1:]]
        groups = group_rows(history, "user")
        texts, prompts, extras = {}, {}, {}
        for u in ids:  # one user's facts and rows at a time, let go once written (10^5 users held 9.7 GB at once)
            rows = groups.pop(u, None) or Rows()
            facts = user_facts(u, rows, users, items, fields)
            texts[u], prompts[u] = user_text(facts, fields), user_prompt(facts, rows, items, fields)
            extras[u] = {"history": facts["history"]}
    else:
        ids = [str(t) for t in dataset.field2id_token[dataset.iid_field][1:]]
        groups = group_rows(history, "item")
        empty = Rows()
        facts = {i: item_facts(i, groups.get(i, empty), items, fields) for i in ids}
        texts = {i: item_text(facts[i], fields) for i in ids}
        prompts = {i: item_prompt(facts[i], fields) for i in ids}
        extras = {i: {} for i in ids}
    return ids, texts, prompts, extras


def build_profiles(spec, config, data, folder, progress=True):
    """Write ``<folder>/<spec.to>`` and its metadata for the experiment's training split.

    Returns:
        dict: the metadata written.
    """
    started = time.time()
    train = training_history(data)
    fingerprint = split_fingerprint(train)  # the split's, also for leaky profiles: their reuse is checked by it
    history = with_ratings(full_history(data) if spec.leaky else train, config, spec.fields, every_file=spec.leaky)
    ids, texts, prompts, extras = profile_texts(spec, config, data, history)
    out = Path(folder) / spec.to
    client = None
    if spec.source == "llm" or spec.encoder == "openai":
        from .llm_client import LLMClient

        client = LLMClient(**spec.llm)
    if spec.source == "llm":
        from .llm_client import write_descriptions

        # one cache per model and instructions: a description written by another model is not reused
        key = hashlib.sha256(f"{spec.llm.get('model')}\n{SYSTEM_PROMPT}".encode()).hexdigest()[:8]
        cache = out.with_name(f"{out.stem}.llm_cache-{key}.jsonl")
        descriptions = write_descriptions(client, {i: prompts[i] for i in ids}, cache, system=SYSTEM_PROMPT,
                                          progress=progress)
        descriptions = [descriptions[i] for i in ids]
    else:
        descriptions = [texts[i] for i in ids]
    written = time.time()
    vectors = encode(descriptions, spec.encoder, dim=spec.dim, seed=config["seed"], client=client, progress=progress,
                     device=config["device"])
    write_profiles(out, ids, descriptions, prompts, vectors, extras)
    meta = {
        **spec.identity(),
        "note": item_text_note(config, spec.fields),
        "file": spec.to,
        "count": len(ids),
        "dim": int(vectors.shape[1]),
        "leaky": spec.leaky,
        "split": split_description(config, fingerprint, train),
        "profile_interactions": int(len(history)),
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": {"texts": round(written - started, 1), "encode": round(time.time() - written, 1)},
    }
    _write_json(meta_path(out), meta)
    logger.info("wrote %d %s profiles to %s", len(ids), spec.entity, out)
    return meta


def profile_entries(ids, descriptions, prompts, vectors, extras):
    """The profile file's entries, one at a time: ``id``, ``description``, ``prompt``, ``embedding`` (7 decimals)
    and the entity's extra fields."""
    for i, d, v in zip(ids, descriptions, vectors, strict=True):
        yield {"id": i, "description": d, "prompt": prompts[i], "embedding": [round(float(x), 7) for x in v],
               **extras[i]}


def write_profiles(path, ids, descriptions, prompts, vectors, extras):
    """Write the profile JSON entry by entry: the bytes ``json.dump`` of the whole list writes, without holding
    every entry's embedding as Python floats at once (about 1.2 GB for 100,000 MiniLM profiles)."""
    def write(fh):
        fh.write("[")
        for index, entry in enumerate(profile_entries(ids, descriptions, prompts, vectors, extras)):
            fh.write(", " if index else "")
            fh.write(json.dumps(entry, ensure_ascii=False))
        fh.write("]")

    _write_atomically(path, write)


def _write_json(path, value):
    _write_atomically(path, lambda fh: json.dump(value, fh, ensure_ascii=False))


def _write_atomically(path, write):
    """``write(file)`` into a temporary file beside ``path``, then moved onto it: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        write(fh)
    os.replace(tmp, path)


def read_meta(json_path):
    path = meta_path(json_path)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


def ensure_profiles(spec, config, data, folder, say=print):
    """Build the profiles a scenario asks for when missing or made for another split / with other settings.

    Returns:
        str: 'built', 'rebuilt' or 'reused'.
    """
    out = Path(folder) / spec.to
    if not out.is_file():
        say(f"llm_config: building {spec.entity} profiles ({spec.label()}) -> {out}")
        if spec.leaky:
            say(f"llm_config: LEAKY on purpose: {spec.to} is written from every interaction, validation and test "
                "included (build_profiles.history: all)")
        _say_note(build_profiles(spec, config, data, folder), say)
        return "built"
    meta = read_meta(out)
    history = training_history(data)
    fingerprint = split_fingerprint(history)
    if meta is None:
        raise UserError(
            f"{out} exists without {meta_path(out).name}, so its split cannot be checked",
            "delete it to have it built, or drop build_profiles and use preprocess_from_json alone",
        )
    other_split = meta.get("split", {}).get("fingerprint") != fingerprint
    made = {"history": "train", **meta}  # metadata written before the history setting: train-only profiles
    other_settings = {k: made.get(k) for k in spec.identity()} != spec.identity()
    if not other_split and not other_settings:
        say(f"llm_config: {out.name} was built for this split with the same settings: reused")
        return "reused"
    why = "another split" if other_split else "other settings"
    if made["history"] != spec.history:
        why = f"{'all interactions (leaky)' if made['history'] == 'all' else 'the training split only'}, " \
              f"and this scenario asks for history: {spec.history}"
    if other_split and spec.on_other_split == "refuse":
        raise UserError(
            f"{out} was built from {why} (fingerprint {meta.get('split', {}).get('fingerprint')}, "
            f"this experiment's is {fingerprint})",
            "set build_profiles.on_other_split: rebuild, or build them with make_profiles.py --config <this file>",
        )
    say(f"llm_config: {out.name} was built from {why}: rebuilding")
    _say_note(build_profiles(spec, config, data, folder), say)
    return "rebuilt"


def _say_note(meta, say):
    if meta.get("note"):
        say(f"llm_config: {meta['note']}")


def refuse_unasked_leak(path, name, specs):
    """Leaky profiles (metadata ``history: all``) are read only by a scenario whose ``build_profiles`` asks for them.

    Raises:
        UserError: ``name`` holds leaky profiles and no build_profiles entry for it says ``history: all``.
    """
    meta = read_meta(path)
    if not meta or meta.get("history") != "all" or any(s.to == name and s.leaky for s in specs):
        return
    raise UserError(
        f"llm_config.preprocess_from_json: {name} holds leaky profiles, written from validation and test "
        f"interactions too ({meta_path(path).name} says history: all)",
        f"ask for them on purpose with build_profiles: {{to: {name}, history: all, ...}}, or use profiles built "
        "from the training split",
    )


# A matrix made from leaky profiles carries a marker file next to it (<matrix>.leaky), which reduce_dim passes on to
# its output: the leak stays visible however the vectors travel, and a scenario that does not ask for leaky profiles
# cannot read them under another name.


def leaky_marker(matrix_path):
    return Path(matrix_path).with_name(f"{Path(matrix_path).name}.leaky")


def mark_leaky(matrix_path, leaky):
    """Write (or remove) the marker saying the matrix ``matrix_path`` was made from leaky profiles."""
    marker = leaky_marker(matrix_path)
    if leaky:
        marker.write_text("made from leaky profiles (build_profiles.history: all)\n", encoding="utf-8")
    else:
        marker.unlink(missing_ok=True)


def is_leaky_matrix(matrix_path):
    return leaky_marker(matrix_path).is_file()


def refuse_unasked_leaky_matrix(matrix_path, llm_config):
    """A matrix made from leaky profiles is read only when the scenario's build_profiles asks for leaky ones.

    Raises:
        UserError: the matrix carries the leaky marker and no build_profiles entry says ``history: all``.
    """
    if not is_leaky_matrix(matrix_path) or any(raw.get("history") == "all" for raw in llm_config.build_profiles):
        return
    raise UserError(f"{Path(matrix_path).name} was made from leaky profiles, written from validation and test "
                    f"interactions too (see {leaky_marker(matrix_path).name})",
                    "ask for leaky profiles on purpose (build_profiles: {history: all, ...}), or use a matrix made "
                    "from train-only profiles")


# --- preparing an experiment's profile matrices (llm_config), before its scenario runs -------------------------


def prepare_profiles(llm, config, data, record, say=print):
    """``llm_config`` preprocessing: random matrices; or profiles built when asked, then JSON -> matrices in
    RecBole id order (shuffled among users for the shuffled control). The journal's ``profiles`` says which."""
    folder = embeddings_dir(llm.embeddings_path, config["dataset"])
    random_spec = llm.preprocess_random or {}
    if random_spec.get("random"):
        write_random_matrices(random_spec, llm, data.dataset, folder, config["seed"], record, say)
        return
    specs = [ProfileSpec.from_config(raw) for raw in llm.build_profiles]
    notes = [build_when_needed(spec, config, data, folder, say) for spec in specs]
    for spec in llm.preprocess_from_json:
        refuse_unasked_leak(folder / spec["from"], spec["from"], specs)
        notes.append(convert_one(spec, llm, data.dataset, folder, shuffle_seed(spec, config), say))
    notes = [note for note in notes if note]
    if notes:
        record.set("profiles", "; ".join(notes))


def write_random_matrices(random_spec, llm, dataset, folder, seed, record, say=print):
    fields = {"user": dataset.uid_field, "item": dataset.iid_field}
    for entity, key in (("user", "random_users_emb_file"), ("item", "random_items_emb_file")):
        name = random_spec.get(key)
        if not name:
            continue
        start_with_1 = llm.users_start_with_1 if entity == "user" else llm.items_start_with_1
        rows = dataset.num(fields[entity]) - int(start_with_1)
        entity_seed = seed + (0 if entity == "user" else 1)
        save_tensor(random_matrix(rows, random_spec["embedding_size"], entity_seed), folder / name)
        record.set("profiles", f"random {random_spec['embedding_size']}-d")
        say(f"llm_config: random {entity} matrix {rows}x{random_spec['embedding_size']} -> {folder / name}")


def build_when_needed(spec, config, data, folder, say=print):
    """Build, rebuild or reuse one ``build_profiles`` entry; returns its journal note."""
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder / spec.to):  # experiments of a sweep (--workers) may build the same profiles at once
        state = ensure_profiles(spec, config, data, folder, say=say)
    return f"{spec.to}: {spec.label()} ({state})"


def convert_one(spec, llm, dataset, folder, shuffle=None, say=print):
    """One ``preprocess_from_json`` entry (:func:`utils.embeddings.convert_profiles`), with ``shuffle`` the rows given
    to other users. Returns the journal note of a shuffle, else None."""
    entity, by = spec.get("entity", "user"), spec.get("by", "recbole")
    note = None if shuffle is None else f"{spec['to']}: {spec['from']} shuffled among {entity}s (seed {shuffle})"
    tokens = list(dataset.field2id_token[dataset.uid_field if entity == "user" else dataset.iid_field][1:])
    start_with_1 = llm.users_start_with_1 if entity == "user" else llm.items_start_with_1
    mark_leaky(folder / spec["to"], (read_meta(folder / spec["from"]) or {}).get("history") == "all")
    matrix = convert_profiles(folder / spec["from"], folder / spec["to"], tokens, by=by, missing=llm.missing_profiles,
                              start_with_1=start_with_1, shuffle=shuffle)
    if matrix is None:
        say(f"llm_config: {spec['to']} is up to date with {spec['from']} (same content, ids and alignment)")
        return note
    if shuffle is not None:
        say(f"llm_config: {spec['to']}: rows shuffled among {entity}s (seed {shuffle}): the shuffled control")
    say(f"llm_config: {spec['from']} -> {spec['to']} {tuple(matrix.shape)} ({entity}s, by {by})")
    return note


def shuffle_seed(spec, config):
    """The seed of ``preprocess_from_json.shuffle`` (true: the experiment's seed), or None when not shuffled."""
    shuffle = spec.get("shuffle", False)
    if shuffle is False:
        return None
    return config["seed"] if shuffle is True else shuffle
