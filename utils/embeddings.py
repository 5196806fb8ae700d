"""LLM profile matrices: JSON profiles to aligned matrices, random matrices, loading, dimensionality reduction.

Files live in ``<llm_config.embeddings_path>/<dataset name>/``. A matrix file holds one row per real user (or
item) in RecBole's internal-id order: row k belongs to internal id k+1, because id 0 is RecBole's padding. With
``users_start_with_1`` / ``items_start_with_1`` a zero row is prepended on loading, so that row index == id.
"""

import functools
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import torch

from .errors import UserError

logger = logging.getLogger(__name__)

# Names of the alignment accepted by ``preprocess_from_json.by``.
ALIGN_RECBOLE = "recbole"  # rows follow RecBole's internal ids (dataset.field2id_token)
ALIGN_SORTED = "sorted"  # rows follow the profiles sorted by raw id
ALIGNMENTS = {
    ALIGN_RECBOLE: ALIGN_RECBOLE,
    ALIGN_SORTED: ALIGN_SORTED,
    "exp_2024_05_18_AVC_users": ALIGN_RECBOLE,  # legacy name seen in earlier configs
    "exp_2024_04_11": ALIGN_SORTED,  # legacy name seen in earlier configs
}


def embeddings_dir(embeddings_path, dataset_name):
    return Path(embeddings_path) / dataset_name


def save_tensor(tensor, path):
    """``torch.save`` through a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(tensor, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:
        tmp.unlink(missing_ok=True)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise UserError(f"cannot write {path}: {reason}", "the embedding folder must be writable, with free space",
                        ) from None


JSON_MEMORY_FACTOR = 4  # peak memory of parsing a profile JSON, in multiples of its size (Python floats and lists)


def available_memory():
    """Bytes of memory available now (``MemAvailable``), or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def refuse_beyond_memory(path, available=None):
    """Refuse, before reading a byte of it, a profile JSON whose parsing would need more memory than is available
    (a 2 GB file once peaked at 4.5 GB before failing): one line instead of the machine swapping or the OOM killer.

    Raises:
        UserError: naming the file, its size, the memory it needs and the memory available.
    """
    size = Path(path).stat().st_size
    available = available_memory() if available is None else available
    if available is not None and size * JSON_MEMORY_FACTOR > available:
        raise UserError(f"{path}: {size / 1e9:.1f} GB of JSON needs about {size * JSON_MEMORY_FACTOR / 1e9:.1f} GB of "
                        f"memory to read, and {available / 1e9:.1f} GB are available",
                        "write the embeddings as a .pt matrix instead (make_profiles.py), or free memory")


def read_profiles(path):
    """Read a JSON profile file: a list of objects with at least ``id`` and ``embedding``.

    Raises:
        UserError: missing file, invalid JSON (with the line), or entries without id / embedding.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"profile file not found: {path.resolve()}", "check llm_config.preprocess_from_json.from")
    refuse_beyond_memory(path)
    try:
        with open(path, "rb") as fh:
            profiles = json.load(fh)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start})", "profile files are UTF-8 JSON") from None
    except (ValueError, RecursionError) as exc:  # nesting too deep, an integer of thousands of digits
        raise UserError(f"{path}: cannot read as JSON: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(profiles, list):
        raise UserError(f"{path}: expected a JSON list of profiles, got {type(profiles).__name__}")
    for index, entry in enumerate(profiles):
        if not isinstance(entry, dict) or "id" not in entry or "embedding" not in entry:
            raise UserError(f"{path}: profile #{index} has no 'id' and 'embedding'", "each entry needs both keys")
    return profiles


def _is_id(value):
    """A profile id is a string or an integer (as JSON writes them; booleans are not ids)."""
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def _is_number(value):
    """A JSON number: an int or a float, never a boolean, a string such as "0.1", null or a list."""
    return type(value) in (int, float)


def _sort_key(token):
    return (0, int(token), "") if token.lstrip("-").isdigit() else (1, 0, token)


def _ragged(source):
    return UserError(f"{source}: embeddings are not lists of numbers of one length")


def stack_embeddings(profiles, source="profiles"):
    """(ids as strings, ``[n, d]`` float32 matrix) from profile dicts.

    Every embedding must be a flat list of JSON numbers of one length d >= 1: a nested list, a string ("0.1"), a
    boolean or null is refused, never converted (the fast reader takes exactly the same inputs).
    """
    if not profiles:
        raise UserError(f"{source}: the profile list is empty")
    for index, entry in enumerate(profiles):
        if not _is_id(entry["id"]):
            raise UserError(f"{source}: profile #{index}: id must be a string or an integer, got {entry['id']!r}")
        embedding = entry["embedding"]
        if not isinstance(embedding, list) or not all(_is_number(v) for v in embedding):
            bad = embedding if not isinstance(embedding, list) else next(v for v in embedding if not _is_number(v))
            raise UserError(f"{source}: profile #{index} (id {entry['id']!r}): the embedding must be a flat list of "
                            f"numbers, found {json.dumps(bad, default=str)[:60]}",
                            "nested lists, quoted numbers, booleans and null are not embeddings")
    ids = [str(entry["id"]) for entry in profiles]
    try:
        matrix = np.asarray([entry["embedding"] for entry in profiles], dtype=np.float32)
    except (ValueError, TypeError, OverflowError):
        raise _ragged(source) from None
    if matrix.ndim != 2:
        raise _ragged(source)
    check_width(matrix, source)
    return ids, matrix


def check_width(matrix, source):
    """Refuse a matrix without columns (empty embeddings: the distillation loss would be NaN)."""
    if matrix.shape[1] < 1:
        raise UserError(f"{source}: the embeddings are empty (width 0)", "profiles need at least one number each")


def read_profile_matrix(path):
    """(ids, ``[n, d]`` float32 matrix) of a JSON profile file, fast.

    With pysimdjson installed, embeddings go from the parsed document straight into a numpy buffer without
    creating a Python float per number (100,000 x 1536 floats in seconds); anything it cannot take (NaN written
    by Python's json, integers in an embedding, invalid JSON) falls back to :func:`read_profiles`, which also
    gives the line of a syntax error.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"profile file not found: {path.resolve()}", "check llm_config.preprocess_from_json.from")
    refuse_beyond_memory(path)
    fast = _read_with_simdjson(path)
    if fast is not None:
        return fast
    return stack_embeddings(read_profiles(path), str(path))


_BETWEEN_OBJECTS = re.compile(rb"\}\s*,\s*\{")
CHUNK_BYTES = 64 << 20


# An embedding list holding a '[' before its first ']': a nested list, which simdjson's as_buffer would flatten.
_NESTED_EMBEDDING = re.compile(rb'"embedding"\s*:\s*\[[^\]]*\[')


def _has_nested_embedding(path):
    """Whether any embedding may hold a nested list (then the careful reader decides; a false alarm, e.g. such text
    inside a description, only costs speed)."""
    import mmap

    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return False
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return _NESTED_EMBEDDING.search(data) is not None


def _read_with_simdjson(path):
    try:
        import simdjson
    except ImportError:
        return None
    if _has_nested_embedding(path):
        return None
    size = path.stat().st_size
    workers = _parse_workers(size)
    if workers > 1:
        try:
            result = _read_in_processes(path, size, workers)
        except Exception:  # noqa: BLE001 - any failure here is retried by the single-process reader below
            result = None
        if result is not None:
            return result
    data = path.read_bytes()
    parser = simdjson.Parser()
    sink = _RowSink(len(data))
    try:
        spans = _spans(data, len(data))
        if spans is None:
            sink.take(parser.parse(data), len(data))
        for start, stop in spans or ():
            sink.take(parser.parse(b"[" + data[start:stop] + b"]"), stop - start)
    except (ValueError, KeyError, TypeError, RuntimeError):
        return None  # the careful path reports what is wrong
    return sink.result()


def _parse_workers(size):
    """Processes for parsing a file of ``size`` bytes: one per available core (up to 8) for files of many chunks."""
    if size <= 4 * CHUNK_BYTES or not hasattr(os, "sched_getaffinity"):
        return 1
    return min(len(os.sched_getaffinity(0)), 8)


def _spans(data, size):
    """Byte ranges of ~64 MiB of the top-level list's objects, or None when the data is small or not a list.

    simdjson slows down sharply on documents of gigabytes, so large files are parsed a chunk at a time. Cuts fall
    between two objects of the list; a cut anywhere else (a ``}, {`` inside a description) leaves a chunk that is
    not valid JSON, so its parse fails and the caller falls back to the careful reader.
    """
    head, tail = bytes(data[:4096]), bytes(data[-4096:])
    begin = len(head) - len(head.lstrip())
    end = size - (len(tail) - len(tail.rstrip())) - 1
    if size <= CHUNK_BYTES or head[begin:begin + 1] != b"[" or data[end:end + 1] != b"]":
        return None
    spans, position = [], begin + 1
    while position < end:
        cut = _BETWEEN_OBJECTS.search(data, position + CHUNK_BYTES, end)
        stop = cut.start() + 1 if cut else end
        spans.append((position, stop))
        position = cut.end() - 1 if cut else end
    return spans


def _read_in_processes(path, size, workers):
    """Parse the chunks of a large file in ``workers`` forked processes, each reading its own byte range (from the
    page cache), and gather their rows in order. (Threads were tried: several times slower than one process.)"""
    import mmap
    import multiprocessing

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        spans = _spans(data, size)
    if not spans:
        return None
    sink = _RowSink(size)
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for ids, rows in pool.imap(_parse_span, [(str(path), start, stop) for start, stop in spans]):
            sink.add(ids, rows, size / len(spans))
    return sink.result()


def _parse_span(task):
    """Worker side: (ids, float32 rows) of one byte range of a profile list."""
    import simdjson

    path, start, stop = task
    with open(path, "rb") as fh:
        fh.seek(start)
        body = fh.read(stop - start)
    sink = _RowSink(stop - start)
    sink.take(simdjson.Parser().parse(b"[" + body + b"]"), stop - start)
    return sink.result()


class _RowSink:
    """Rows of parsed profile lists, written straight into one float32 matrix sized from the first chunk's bytes
    per row (grown if the estimate falls short), so no block is allocated twice or concatenated."""

    def __init__(self, total_bytes):
        self.total_bytes = total_bytes
        self.ids, self.matrix, self.count = [], None, 0

    def _reserve(self, rows, width, chunk_bytes):
        if self.matrix is None:
            estimate = int(self.total_bytes * rows / chunk_bytes * 1.02) + 1
            self.matrix = np.empty((max(estimate, rows), width), dtype=np.float32)
        if self.count + rows > len(self.matrix):
            grown = np.empty((max(self.count + rows, int(len(self.matrix) * 1.25)), self.matrix.shape[1]), np.float32)
            grown[: self.count] = self.matrix[: self.count]
            self.matrix = grown

    def take(self, document, chunk_bytes):
        """Add a parsed list; raises on anything the fast path does not take (not a list, ragged widths, ...)."""
        import simdjson

        if not isinstance(document, simdjson.Array) or not len(document):
            raise ValueError("not a non-empty list")
        first = document[0]["embedding"]
        if not isinstance(first, simdjson.Array) or not len(first):
            raise ValueError("not an embedding of width 1 or more")
        self._reserve(len(document), len(first), chunk_bytes)
        matrix, row = self.matrix, self.count
        for entry in document:
            # as_buffer refuses strings, booleans and null; nested lists were ruled out before parsing
            embedding = entry["embedding"]
            if not isinstance(embedding, simdjson.Array):
                raise TypeError("an embedding that is no list")
            values = np.frombuffer(embedding.as_buffer(of_type="d"), dtype=np.float64)
            if len(values) != matrix.shape[1]:
                raise ValueError("ragged widths")
            identifier = entry["id"]
            if not _is_id(identifier):
                raise TypeError("an id that is no string or integer")
            matrix[row] = values
            self.ids.append(str(identifier))
            row += 1
        self.count = row

    def add(self, ids, rows, chunk_bytes):
        """Add rows parsed elsewhere."""
        if self.matrix is not None and rows.shape[1] != self.matrix.shape[1]:
            raise ValueError("ragged widths")
        self._reserve(len(rows), rows.shape[1], chunk_bytes)
        self.matrix[self.count: self.count + len(rows)] = rows
        self.ids.extend(ids)
        self.count += len(rows)

    def result(self):
        if not self.count:
            return None
        matrix = self.matrix[: self.count]
        if self.count < 0.9 * len(self.matrix):  # a poor estimate: do not keep the unused rows alive
            matrix = matrix.copy()
        return self.ids, matrix


def align_rows(ids, matrix, tokens, by=ALIGN_RECBOLE, missing="error", source="profiles"):
    """Reorder profile rows so that row k belongs to the dataset's k-th real id (RecBole id k+1).

    Args:
        ids: the profiles' raw ids (strings), one per row of ``matrix``.
        matrix: ``[n, d]`` float32.
        tokens: the dataset's raw tokens of real ids, in internal-id order (``field2id_token[field][1:]``).
        by: an alignment name from :data:`ALIGNMENTS`.
        missing: 'error' (refuse profiles that miss ids) or 'zero' (zero rows, with a warning).
        source: the file name, for messages.

    Returns:
        torch.Tensor: ``[len(tokens), d]`` float32 (sorted alignment: one row per profile).
    """
    if by not in ALIGNMENTS:
        raise UserError(f"unknown alignment by: '{by}'", f"use one of: {', '.join(ALIGNMENTS)}")
    position = {}
    for row, key in enumerate(ids):
        if key in position:
            raise UserError(f"{source}: id '{key}' appears twice")
        position[key] = row
    tokens = [str(t) for t in tokens]
    extra = len(position) - len(position.keys() & set(tokens))
    if ALIGNMENTS[by] == ALIGN_SORTED and not extra:
        aligned = _sorted_rows(position, matrix, tokens, by, source)
    else:
        if extra:
            logger.warning(
                "%s: %d of %d profiles are of ids the dataset does not keep (filtered out or absent) and are not "
                "used; rows are picked by id in RecBole's order%s", source, extra, len(position),
                f" (by: {by} would misalign them, as the original tool did)" if ALIGNMENTS[by] == ALIGN_SORTED else "",
            )
        aligned = _rows_by_id(position, matrix, tokens, missing, source)
    aligned = np.ascontiguousarray(aligned, dtype=np.float32)
    check_finite(aligned, source)
    return torch.from_numpy(aligned)


def _sorted_rows(position, matrix, tokens, by, source):
    """Profiles stacked sorted by raw id (the legacy alignment), warning when that is not RecBole's order."""
    ordered = sorted(position, key=_sort_key)
    if ordered != tokens:
        logger.warning(
            "%s: by '%s' stacks profiles sorted by raw id, which does not follow RecBole's internal ids for "
            "this dataset; rows will belong to the wrong users unless the files were made that way",
            source, by,
        )
    return matrix[[position[key] for key in ordered]]


def _rows_by_id(position, matrix, tokens, missing, source):
    """One row per dataset id in RecBole's order, picked by id; ids without a profile are an error or zero rows."""
    rows = np.fromiter((position.get(t, -1) for t in tokens), dtype=np.int64, count=len(tokens))
    absent = rows < 0
    if absent.any():
        examples = [t for t, a in zip(tokens, absent, strict=True) if a][:5]
        if missing != "zero":
            raise UserError(
                f"{source}: profiles miss {int(absent.sum())} of {len(tokens)} ids in the dataset "
                f"(e.g. {', '.join(examples)})",
                "make profiles for every user, or set llm_config.missing_profiles: zero to use zero rows",
            )
        logger.warning("%s: %d of %d ids have no profile; their rows are zero", source, absent.sum(), len(tokens))
    aligned = matrix[np.where(absent, 0, rows)]
    aligned[absent] = 0.0
    return aligned


def profiles_to_matrix(profiles, tokens, by=ALIGN_RECBOLE, missing="error", source="profiles"):
    """:func:`align_rows` for a list of profile dicts (``id`` int or str, ``embedding`` list of numbers)."""
    ids, matrix = stack_embeddings(profiles, source)
    return align_rows(ids, matrix, tokens, by=by, missing=missing, source=source)


def check_finite(matrix, source):
    """Refuse NaN or inf, counting them."""
    values = matrix.numpy() if isinstance(matrix, torch.Tensor) else matrix
    bad = ~np.isfinite(values)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        nan = int(np.isnan(values).sum())
        raise UserError(
            f"{source}: {nan} NaN and {int(bad.sum()) - nan} inf values in {len(rows)} row(s) "
            f"(first at row {int(rows[0])})",
            "re-create the profiles; an encoder should never emit NaN",
        )


def random_matrix(rows, width, seed):
    """A reproducible random ``[rows, width]`` float32 matrix (standard normal), for debugging runs."""
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randn(rows, width, generator=generator)


def derangement(count, seed):
    """A reproducible permutation of ``range(count)`` without fixed points (Sattolo's algorithm: one cycle through
    every index), so that with two or more rows no row stays where it was."""
    rng = np.random.default_rng(int(seed))
    order = np.arange(count)
    for i in range(count - 1, 0, -1):
        j = int(rng.integers(0, i))  # j < i, never i itself: the result is a single cycle
        order[i], order[j] = order[j], order[i]
    return order


def shuffle_rows(matrix, seed):
    """The shuffled control: the same profile vectors (the same distribution), each given to another user.

    Returns:
        (matrix whose row k is the input's row ``order[k]``, order)."""
    order = derangement(matrix.shape[0], seed)
    return matrix[torch.as_tensor(order)], order


def load_matrix(path, *, expected_rows, start_with_1, entity):
    """Load a profile matrix safely and check it against the dataset.

    Args:
        path: the ``.pt`` file.
        expected_rows: ``dataset.user_num`` (or ``item_num``): real ids plus the padding id 0.
        start_with_1: prepend a zero row (the file holds only real ids).
        entity: 'user' or 'item', for messages.

    Returns:
        torch.Tensor: ``[expected_rows, d]`` float32, row index == RecBole id.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"{entity} embedding file not found: {path.resolve()}",
            "check the file name in wrap_model / llm_config, or create it with preprocess_from_json or reduce_dim",
        )
    matrix = load_float_matrix(path)
    if start_with_1:
        matrix = torch.vstack((torch.zeros(1, matrix.shape[1]), matrix))
    if matrix.shape[0] != expected_rows:
        flag = f"{entity}s_start_with_1"
        raise UserError(
            f"{path}: {matrix.shape[0] - int(start_with_1)} rows"
            + (" (+1 zero row)" if start_with_1 else "")
            + f" do not match the dataset's {expected_rows - 1} {entity}s (+ padding id 0 = {expected_rows} rows)",
            f"a file of real {entity}s only needs {flag}: True; one that includes row 0 needs {flag}: False",
        )
    return matrix


def torch_load_reason(exc):
    """A short reason for a failed ``torch.load(..., weights_only=True)`` (torch's own text is a paragraph)."""
    text = str(exc)
    if "WeightsUnpickler error:" in text:
        detail = next((line.strip() for line in text.split("WeightsUnpickler error:", 1)[1].splitlines()
                       if line.strip()), "")
        return f"not a file torch.save wrote, or one that needs code to load ({detail[:120]})"
    return (text.strip().splitlines() or [type(exc).__name__])[0][:200]


def load_float_matrix(path):
    """A ``.pt`` file as a 2-D float32 tensor with at least one column and no NaN or inf (``weights_only``).

    Raises:
        UserError: the file does not load safely, or holds anything else (another shape, integers, a dict, ...).
    """
    try:
        matrix = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a file that is not a safe tensor file
        raise UserError(f"cannot load {path} safely as a tensor: {torch_load_reason(exc)}",
                        "matrix files are written by preprocess_from_json, preprocess_random or reduce_dim") from None
    if isinstance(matrix, np.ndarray):
        matrix = torch.from_numpy(matrix)
    if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2 or not matrix.is_floating_point():
        shape = f"{matrix.dtype} tensor of shape {tuple(matrix.shape)}" if isinstance(matrix, torch.Tensor) \
            else type(matrix).__name__
        raise UserError(f"{path}: expected a 2-D float matrix, got a {shape}")
    matrix = matrix.float()
    check_width(matrix, str(path))
    check_finite(matrix, str(path))
    return matrix


def pca_torch(matrix, dimension, device):
    """PCA by an exact SVD on ``device`` (float64), each component's sign fixed as scikit-learn fixes it (its
    largest loading positive), so a GPU gives the CPU's result up to rounding.

    Returns:
        torch.Tensor: ``[n, dimension]`` float64, on the CPU.
    """
    values = matrix.to(device=device, dtype=torch.float64)
    values = values - values.mean(dim=0, keepdim=True)
    _, _, vt = torch.linalg.svd(values, full_matrices=False)
    components = vt[:dimension]
    signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
    return (values @ (components * signs).T).cpu()


@functools.cache
def cache_umap_compilation():
    """Let numba keep umap-learn's compiled functions on disk, as it does for pynndescent's.

    umap-learn compiles some of its functions (``fast_knn_indices``, ``smooth_knn_dist``, ...) without numba's cache,
    so every process that fits a UMAP spent about 10 s compiling them again (2 cores) before a fit of a second. With
    caching on, the first process writes the machine code where numba keeps caches and later ones load it. The code
    is the same either way. Where numba finds no writable cache location, the function stays as it was."""
    import numba
    import umap.layouts
    import umap.umap_
    import umap.utils

    for module in (umap.umap_, umap.utils, umap.layouts):
        for function in vars(module).values():
            cache = getattr(function, "_cache", None)
            if isinstance(function, numba.core.dispatcher.Dispatcher) and type(cache).__name__ == "NullCache":
                try:
                    function.enable_caching()
                except RuntimeError:  # numba: no locator for a cache directory here
                    pass


def reduce_matrix(matrix, dimension, method="umap", seed=0, device=None):
    """Reduce ``[n, d]`` to ``[n, dimension]`` with UMAP (the original tool's reduction) or PCA.

    PCA runs on ``device`` when that is a GPU (scikit-learn's on the CPU otherwise); umap-learn has no GPU code, so
    UMAP always runs on the CPU.

    Returns:
        (torch.Tensor, str): the reduced float32 matrix and the method actually used ('pca on cuda:0', 'pca', 'umap').
    """
    n, width = matrix.shape
    if not isinstance(dimension, int) or isinstance(dimension, bool) or not 1 <= dimension <= min(n, width):
        raise UserError(f"reduce_dim: dimension {dimension!r} must be an integer in [1, {min(n, width)}]")
    values = matrix.double().numpy()
    if method == "pca" and device is not None and torch.device(device).type == "cuda":
        reduced = pca_torch(matrix, dimension, device).numpy()
        method = f"pca on {torch.device(device)}"
    elif method == "pca":
        from sklearn.decomposition import PCA

        reduced = PCA(n_components=dimension, random_state=seed).fit_transform(values)
    elif method == "umap":
        try:
            import umap
        except ImportError:
            raise UserError(
                "reduce_dim: method 'umap' needs umap-learn, which is not installed",
                "install the project's dependencies (make), or use method: pca",
            ) from None
        # seeded, hence single-threaded (UMAP would otherwise override n_jobs itself, with a warning); fitting
        # changes torch's thread count (through numba/OpenMP), which the training after it must not inherit
        cache_umap_compilation()
        threads = torch.get_num_threads()
        try:
            reduced = umap.UMAP(n_components=dimension, random_state=seed, n_jobs=1).fit_transform(values)
        finally:
            torch.set_num_threads(threads)
    else:
        raise UserError(f"reduce_dim: unknown method '{method}'", "use pca or umap")
    reduced = torch.from_numpy(np.ascontiguousarray(reduced, dtype=np.float32))
    check_finite(reduced, f"reduce_dim ({method})")
    return reduced, method


def describe(matrix):
    """A short description of a matrix for the step output."""
    norms = matrix.norm(dim=1)
    return f"{tuple(matrix.shape)}, mean row norm {float(norms.mean()):.3f}" if len(norms) else str(tuple(matrix.shape))


# --- the conversion cache: JSON profiles -> matrix, skipped when the matrix is up to date -------------------------


def convert_profiles(source, target, tokens, *, by, missing, start_with_1, shuffle=None):
    """Write ``target``, the matrix of the JSON profiles ``source`` in RecBole's id order (``tokens``), unless it
    was made from the same JSON content, ids and settings (:func:`conversion_identity`), kept next to it. With a
    ``shuffle`` seed, the rows are given to other users (:func:`shuffle_rows`: the shuffled control).

    Returns:
        torch.Tensor or None: the matrix written; None when ``target`` was up to date.
    """
    made_from = conversion_identity(source, tokens, by, missing, start_with_1, shuffle)
    if Path(target).is_file() and read_identity(target) == made_from:
        return None
    ids, rows = read_profile_matrix(source)
    matrix = align_rows(ids, rows, tokens, by=by, missing=missing, source=str(source))
    if shuffle is not None:
        matrix, _ = shuffle_rows(matrix, shuffle)
    if not start_with_1:
        matrix = torch.vstack((torch.zeros(1, matrix.shape[1]), matrix))
    save_tensor(matrix, target)
    write_identity(target, made_from)
    return matrix


def conversion_identity(source, tokens, by, missing, start_with_1, shuffle=None):
    """What a converted matrix depends on: the JSON's content (hashed, not its name or date), the dataset's ids in
    RecBole's order, and the conversion settings."""
    if not Path(source).is_file():
        return None
    ids = hashlib.sha256("\n".join(map(str, tokens)).encode()).hexdigest()
    identity = {"json_sha256": _content_hash(source), "ids_sha256": ids, "by": by, "missing": missing,
                "start_with_1": start_with_1}
    return identity if shuffle is None else {**identity, "shuffle_seed": shuffle}


def _identity_path(target):
    return Path(target).with_name(f"{Path(target).name}.source.json")


def _content_hash(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def read_identity(target):
    """What the matrix ``target`` was made from, or None when unknown or when the file is no longer the matrix
    that conversion wrote (its content is hashed: e.g. a ``reduce_dim`` wrote another matrix under that name)."""
    try:
        identity = json.loads(_identity_path(target).read_text(encoding="utf-8"))
        written = identity.pop("matrix_sha256")
        return identity if written == _content_hash(target) else None
    except (OSError, ValueError, KeyError, AttributeError):
        return None


def write_identity(target, identity):
    _identity_path(target).write_text(json.dumps({**identity, "matrix_sha256": _content_hash(target)}))
