"""Chat completions and embeddings from an OpenAI-compatible API through the official ``openai`` package.

The package speaks to OpenAI, vLLM, Ollama, LM Studio, llama.cpp and any compatible server (``base_url``), and
does the HTTP, the retries with backoff (connection errors, 408, 409, 429, 5xx; Retry-After honoured) and the
timeouts. This module adds only what it does not do: one-line errors with a hint (401/403, 404, ... and the final
failure after the retries), bounded concurrency over many profiles, and a per-id JSONL cache of finished
descriptions, so that a run killed half way resumes where it stopped.
"""

import hashlib
import itertools
import json
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import UserError
from .params import ENV_NAME, HTTP_URL, TEXT, Param, Schema, int_from, number_in

logger = logging.getLogger(__name__)

_ABANDONED = set()  # the request threads left behind at a deadline or an interruption (they cannot be killed)
_REQUESTS = itertools.count(1)  # numbers the request threads


class _QuietAbandoned(logging.Filter):
    """Drops what a request thread left behind still logs (the package's "Retrying request ..."): after its
    one error line the run says nothing more about a request it gave up on."""

    def filter(self, record):
        return record.threadName not in _ABANDONED


for _name in ("openai._base_client", "openai", "httpx", "httpx2"):  # their INFO lines (httpcore's are DEBUG)
    logging.getLogger(_name).addFilter(_QuietAbandoned())

LLM_OPTIONS = Schema((
    Param("base_url", HTTP_URL, doc="the OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1"),
    Param("model", TEXT, doc="the chat model (source: llm)"),
    Param("embedding_model", TEXT, doc="the embedding model (encoder: openai)"),
    Param("api_key_env", ENV_NAME, doc="the environment variable holding the API key (never the key itself)"),
    Param("timeout", number_in(0, 3600, low_open=True), doc="seconds to wait for one response"),
    Param("max_retries", int_from(0, 20), doc="retries after a transient failure"),
    Param("deadline", number_in(0, 86400, low_open=True), default=180,
          doc="seconds one request may take in all, retries included (then it fails in one line)"),
    Param("concurrency", int_from(1, 256), doc="requests in flight at once"),
    Param("temperature", number_in(0, 2), doc="sampling temperature of completions"),
    Param("max_tokens", int_from(1, 1_000_000), doc="longest completion"),
), where="build_profiles.llm", none_is_unset=False, summary="the endpoint of source: llm / encoder: openai")
OPTIONS = tuple(LLM_OPTIONS.names)
ERROR_TEXT_CHARS = 200
HINTS = {
    400: "check the model name and the request parameters (max_tokens, temperature)",
    404: "check base_url (usually ending in /v1) and the model name",
    422: "check the model name and the request parameters (max_tokens, temperature)",
}


class LLMClient:
    """The chat-completion and embedding endpoints of an OpenAI-compatible API.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (vLLM), ``http://127.0.0.1:11434/v1`` (Ollama).
        model: the chat model used by ``complete``.
        embedding_model: the model used by ``embed``.
        api_key_env: the environment variable holding the API key, read at each request; when it is unset no
            ``Authorization`` header is sent (local servers need none).
        timeout: seconds to wait for one HTTP response.
        deadline: seconds one request may take in all, retries and their waits included: a server that accepts and
            never answers fails in one line then; an interruption (Ctrl-C, SIGTERM) ends the wait at once.
        max_retries: the package's retries after a first try that failed transiently.
        concurrency: most requests in flight at once in ``write_descriptions``.
        temperature, max_tokens: sampling settings of completions.

    Raises:
        UserError: a base_url that is not http(s), a concurrency below 1 or negative max_retries.
    """

    def __init__(self, base_url, model=None, embedding_model=None, api_key_env="OPENAI_API_KEY",
                 timeout=60.0, max_retries=5, concurrency=4, temperature=0.0, max_tokens=400, deadline=180.0):
        LLM_OPTIONS.check({"base_url": base_url, "timeout": timeout, "max_retries": max_retries,
                           "concurrency": concurrency, "deadline": deadline}, "LLM")
        import openai

        self.base_url = base_url.rstrip("/")
        self.model, self.embedding_model, self.api_key_env = model, embedding_model, api_key_env
        self.max_retries, self.concurrency = int(max_retries), int(concurrency)
        self.temperature, self.max_tokens = temperature, max_tokens
        self.deadline = float(deadline)
        self.stopped = threading.Event()  # set when the run is interrupted: requests waiting give up at once
        # the key travels in a per-request header (see _auth), so the client's own key is never sent
        self._openai = openai.OpenAI(base_url=self.base_url, api_key="unused", timeout=float(timeout),
                                     max_retries=self.max_retries)

    def complete(self, prompt, system=None):
        """One chat completion; returns ``choices[0].message.content``, stripped."""
        if not self.model:
            raise UserError("no chat model set for the LLM client", "pass model=... (the name the server serves)")
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        reply = self._call("chat/completions", self._openai.chat.completions.create, model=self.model,
                           messages=messages, temperature=self.temperature, max_tokens=self.max_tokens)
        try:
            content = reply.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            raise UserError(f"POST {self.base_url}/chat/completions: the reply has no choices[0].message.content",
                            "check that the server speaks the OpenAI chat-completions API") from None
        if not isinstance(content, str):
            raise UserError(f"POST {self.base_url}/chat/completions: choices[0].message.content is "
                            f"{type(content).__name__}, not text",
                            "a reasoning model may have spent max_tokens before answering: raise max_tokens")
        return content.strip()

    def embed(self, texts, batch_size=64, progress=False):
        """Embed texts, ``batch_size`` per request.

        Returns:
            numpy.ndarray: float32 ``[len(texts), d]``, row i embedding ``texts[i]``.
        """
        if not self.embedding_model:
            raise UserError("no embedding model set for the LLM client",
                            "pass embedding_model=... (the name the server serves)")
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        texts = list(texts)
        batches = [texts[start:start + batch_size] for start in range(0, len(texts), batch_size)]
        rows = [self._embed_batch(batch) for batch in tqdm(batches, desc="embeddings", disable=not progress)]
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        if len({block.shape[1] for block in rows}) > 1:
            raise UserError(f"{self.base_url}/embeddings: batches came back with different dimensions "
                            f"{sorted({block.shape[1] for block in rows})}")
        return np.concatenate(rows, axis=0)

    def _embed_batch(self, batch):
        """One embeddings request; rows put back in input order by their ``index``."""
        reply = self._call("embeddings", self._openai.embeddings.create, model=self.embedding_model, input=batch)
        where = f"POST {self.base_url}/embeddings"
        data = getattr(reply, "data", None)
        if not isinstance(data, list) or len(data) != len(batch):
            got = f"{len(data)} items" if isinstance(data, list) else "no data list"
            raise UserError(f"{where}: expected {len(batch)} embeddings in data, got {got}")
        if not all(isinstance(item.index, int) and isinstance(item.embedding, list) for item in data):
            raise UserError(f"{where}: an item of data lacks an integer index or an embedding list")
        items = sorted(data, key=lambda item: item.index)
        if [item.index for item in items] != list(range(len(batch))):
            raise UserError(f"{where}: data indices are not 0..{len(batch) - 1}")
        if len({len(item.embedding) for item in items}) != 1:
            raise UserError(f"{where}: embeddings in one reply have different lengths")
        return np.asarray([item.embedding for item in items], dtype=np.float32)

    def _call(self, path, create, **request):
        """One request within :attr:`deadline` (retries included): the package's request runs in a daemon thread
        that this thread waits for in short slices, so a silent server or an interruption never holds the run."""
        outcome = {}

        def request_once():
            try:
                outcome["reply"] = self._call_once(path, create, **request)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = exc

        worker = threading.Thread(target=request_once, name=f"llm-request-{next(_REQUESTS)}", daemon=True)
        worker.start()
        ends = time.monotonic() + self.deadline
        while worker.is_alive() and time.monotonic() < ends and not self.stopped.is_set():
            worker.join(min(0.5, max(ends - time.monotonic(), 0)))
        if worker.is_alive():
            _ABANDONED.add(worker.name)
        if self.stopped.is_set():
            raise UserError(f"POST {self.base_url}/{path}: stopped (the run was interrupted)")
        if worker.is_alive():
            raise UserError(f"POST {self.base_url}/{path}: no answer within the deadline of {self.deadline:g} s "
                            "(retries included)", "check that the server answers, or raise build_profiles.llm."
                            "deadline")
        if "error" in outcome:
            raise outcome["error"]
        return outcome["reply"]

    def _call_once(self, path, create, **request):
        """One request through the package (which retries); its failures become one-line UserErrors."""
        import openai

        url = f"{self.base_url}/{path}"
        tries = "1 try" if self.max_retries == 0 else f"{self.max_retries + 1} tries"
        try:
            return create(**request, extra_headers=self._auth())
        except openai.APIStatusError as exc:
            status, text = exc.status_code, _error_text(exc)
            if _retried(status):
                raise UserError(f"POST {url} failed after {tries}: HTTP {status}: {text}",
                                "the server kept failing; try again later or lower concurrency") from None
            raise UserError(f"POST {url} failed: HTTP {status}: {text}", self._hint(status)) from None
        except openai.APIConnectionError as exc:  # timeouts included
            cause = exc.__cause__ or exc
            reason = _clip(f"{type(cause).__name__}: {cause}")
            raise UserError(f"POST {url} failed after {tries}: connection error: {reason}",
                            "check that the server is running and that base_url is right") from None
        except (openai.APIResponseValidationError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"POST {url}: the reply is not what the API returns: {_clip(exc)}",
                            "check that base_url points at an OpenAI-compatible API (usually ending in /v1)") from None

    def _auth(self):
        """The Authorization header for this request: the key from the environment, or none at all."""
        import openai

        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return {"Authorization": f"Bearer {key}" if key else openai.omit}

    def _hint(self, status):
        if status in (401, 403):
            state = "set" if self.api_key_env and os.environ.get(self.api_key_env) else "not set"
            return f"check the API key in the environment variable {self.api_key_env} (now {state})"
        return HINTS.get(status)


def _retried(status):
    """The statuses the package retries (so a failure with one of them came after every try)."""
    return status in (408, 409, 429) or status >= 500


def _error_text(exc):
    """The server's ``error.message`` when the body has one, else the package's message."""
    body = exc.body
    message = body.get("message") if isinstance(body, dict) else body
    return _clip(message if isinstance(message, str) and message else exc.message)


def _clip(text):
    """One line of at most ERROR_TEXT_CHARS characters."""
    return " ".join(str(text).split())[:ERROR_TEXT_CHARS]


def write_descriptions(client, prompts, cache_path, system=None, progress=True):
    """Ask the LLM for one description per entity, resuming from and appending to a JSONL cache.

    Each finished description is appended at once as ``{"id", "prompt_sha256", "description"}`` (flushed and
    fsync'ed), so an interrupted run loses nothing. Cache lines whose hash matches the current prompt are reused;
    lines for another prompt and a truncated last line are ignored.

    Args:
        client: an ``LLMClient``; at most ``client.concurrency`` requests run at once.
        prompts: ``{entity_id: prompt text}``.
        cache_path: the JSONL cache file (created with its folder when missing).
        system: an optional system message for every request.
        progress: show a tqdm bar.

    Returns:
        dict: ``{entity_id: description}`` in the order of ``prompts``.

    Raises:
        UserError: a request finally failed; the descriptions finished before stay in the cache.
    """
    cache_path = Path(cache_path)
    descriptions = _cached_descriptions(cache_path, prompts)
    pending = [entity for entity in prompts if entity not in descriptions]
    logger.info("descriptions: %d of %d cached in %s, %d to request",
                len(descriptions), len(prompts), cache_path, len(pending))
    if pending:
        with _CacheWriter(cache_path) as cache:
            _request_descriptions(client, prompts, pending, system, cache, descriptions, progress)
    return {entity: descriptions[entity] for entity in prompts}


def _request_descriptions(client, prompts, pending, system, cache, descriptions, progress):
    """Run the pending requests, at most ``client.concurrency`` at once, caching each as it finishes."""

    def describe(entity):
        text = client.complete(prompts[entity], system=system)
        cache.append(entity, prompts[entity], text)
        return entity, text

    executor = ThreadPoolExecutor(max_workers=client.concurrency, thread_name_prefix="llm")
    try:
        futures = [executor.submit(describe, entity) for entity in pending]
        for future in tqdm(as_completed(futures), total=len(futures), desc="descriptions", disable=not progress):
            entity, text = future.result()
            descriptions[entity] = text
    except BaseException as exc:
        if not isinstance(exc, UserError):  # interrupted: the requests in flight stop waiting at once
            client.stopped.set()
        executor.shutdown(wait=True, cancel_futures=True)  # requests already running still reach the cache
        logger.warning("descriptions stopped after a failure; %d new ones were written to %s, a rerun resumes "
                       "from there", cache.written, cache.path)
        raise
    executor.shutdown(wait=True)


class _CacheWriter:
    """Appends description lines to the JSONL cache, one writer thread at a time, each line on disk at once."""

    def __init__(self, path):
        self.path = Path(path)
        self.written = 0
        self._lock = threading.Lock()
        self._file = None

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = self.path.is_file() and _ends_without_newline(self.path)
        self._file = open(self.path, "a", encoding="utf-8")
        if needs_newline:  # end a line truncated by a kill, so the next record starts on its own line
            self._file.write("\n")
        return self

    def __exit__(self, *exc_info):
        self._file.close()

    def append(self, entity, prompt, description):
        """Write one ``{"id", "prompt_sha256", "description"}`` line, flushed and fsync'ed."""
        line = json.dumps({"id": str(entity), "prompt_sha256": prompt_sha256(prompt), "description": description},
                          ensure_ascii=False)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            os.fsync(self._file.fileno())
            self.written += 1


def prompt_sha256(prompt):
    """Hex SHA-256 of a prompt's UTF-8 text: the key that ties a cached description to its prompt."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()


def _cached_descriptions(path, prompts):
    """Descriptions from the cache whose prompt hash matches the current prompt, keyed like ``prompts``."""
    if not path.is_file():
        return {}
    by_id = {str(entity): entity for entity in prompts}
    found, ignored = {}, 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            record = _cache_record(line)
            entity = by_id.get(record["id"]) if record else None
            if entity is None or record["prompt_sha256"] != prompt_sha256(prompts[entity]):
                ignored += bool(line.strip())
                continue
            found[entity] = record["description"]
    if ignored:
        logger.info("%s: %d lines ignored (another prompt, unknown id or truncated)", path, ignored)
    return found


def _cache_record(line):
    """One cache line as a dict, or None when it is not a complete, well-formed record."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return None
    fields_ok = isinstance(record, dict) and all(isinstance(record.get(key), str)
                                                 for key in ("id", "prompt_sha256", "description"))
    return record if fields_ok else None


def _ends_without_newline(path):
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        if fh.tell() == 0:
            return False
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) != b"\n"
