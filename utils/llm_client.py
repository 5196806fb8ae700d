"""A small client for an OpenAI-compatible HTTP API: chat completions, embeddings, cached descriptions.

Works with OpenAI and with local servers (vLLM, Ollama, llama.cpp) that speak the same ``/v1`` API. Only the
standard library talks HTTP. Transient failures (connection errors, HTTP 408, 409, 429 and 5xx) are retried with
exponential backoff; everything else that goes wrong with the server is reported as a one-line ``UserError``.

``write_descriptions`` asks for one description per entity and appends each one, as soon as it is finished, to a
JSONL cache, so that a run killed half way resumes where it stopped.
"""

import hashlib
import http.client
import json
import logging
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .errors import UserError

logger = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 429})  # and every 5xx
MAX_WAIT_S = 30.0  # cap on one wait between tries, Retry-After included
ERROR_TEXT_CHARS = 200
CONNECTION_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout, http.client.HTTPException)


class LLMClient:
    """Client for the chat-completion and embedding endpoints of an OpenAI-compatible API.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (a trailing slash is dropped).
        model: the chat model used by ``complete``.
        embedding_model: the model used by ``embed``.
        api_key_env: name of the environment variable holding the API key, read at request time; when it is
            unset no ``Authorization`` header is sent (local servers need none).
        timeout: seconds to wait for one HTTP response.
        max_retries: retries after the first try of a request that failed transiently.
        backoff: first wait in seconds; the wait before retry k+1 is ``backoff * 2**k`` (at least the server's
            numeric ``Retry-After``), capped at ``MAX_WAIT_S``.
        concurrency: most requests in flight at once in ``write_descriptions``.
        temperature: sampling temperature of completions.
        max_tokens: most tokens in one completion.

    Raises:
        UserError: a base_url that is not http(s), or a concurrency below 1 or negative max_retries.
    """

    def __init__(self, base_url, model=None, embedding_model=None, api_key_env="OPENAI_API_KEY",
                 timeout=60.0, max_retries=5, backoff=1.0, concurrency=4, temperature=0.0, max_tokens=400):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise UserError(f"LLM base_url must start with http:// or https://, got {base_url!r}",
                            "e.g. http://127.0.0.1:8000/v1")
        if int(concurrency) < 1:
            raise UserError(f"LLM concurrency must be at least 1, got {concurrency!r}")
        if int(max_retries) < 0:
            raise UserError(f"LLM max_retries must be 0 or more, got {max_retries!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.embedding_model = embedding_model
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.concurrency = int(concurrency)
        self.temperature = temperature
        self.max_tokens = max_tokens

    def complete(self, prompt, system=None):
        """One chat completion.

        Args:
            prompt: the user message.
            system: an optional system message sent before it.

        Returns:
            str: ``choices[0].message.content`` of the reply, stripped.

        Raises:
            UserError: no model set, a failed request, or a reply without that content.
        """
        if not self.model:
            raise UserError("no chat model set for the LLM client", "pass model=... (the name the server serves)")
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        payload = {"model": self.model, "messages": messages, "temperature": self.temperature,
                   "max_tokens": self.max_tokens}
        url, reply = self._post("chat/completions", payload)
        return _completion_text(url, reply)

    def embed(self, texts, batch_size=64, progress=False):
        """Embed texts, ``batch_size`` of them per request.

        Args:
            texts: a sequence of strings (not a single string).
            batch_size: texts per request.
            progress: show a tqdm bar over the batches.

        Returns:
            numpy.ndarray: float32 ``[len(texts), d]``, row i embedding ``texts[i]``.

        Raises:
            UserError: no embedding model set, a failed request, or a reply of the wrong shape.
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
        url, reply = self._post("embeddings", {"model": self.embedding_model, "input": batch})
        return _embedding_rows(url, reply, len(batch))

    def _post(self, path, payload):
        """POST JSON to ``{base_url}/{path}``, retrying transient failures.

        Returns:
            tuple: (url, the decoded JSON reply).
        """
        url = f"{self.base_url}/{path}"
        body = json.dumps(payload).encode("utf-8")
        for attempt in range(self.max_retries + 1):
            try:
                return url, self._send(url, body)
            except urllib.error.HTTPError as exc:
                status, text, retry_after = exc.code, _error_text(exc), _retry_after(exc.headers)
                if not _retryable(status):
                    raise UserError(f"POST {url} failed: HTTP {status}: {text}", self._hint(status)) from None
                problem = f"HTTP {status}: {text}"
            except CONNECTION_ERRORS as exc:
                problem, retry_after = f"connection error: {_reason(exc)}", None
            if attempt == self.max_retries:
                tries = "1 try" if attempt == 0 else f"{attempt + 1} tries"
                raise UserError(f"POST {url} failed after {tries}: {problem}",
                                _exhausted_hint(problem)) from None
            wait = self._wait(attempt, retry_after)
            logger.warning("POST %s: %s; retry %d of %d in %.2f s", url, problem, attempt + 1, self.max_retries, wait)
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _send(self, url, body):
        """One POST; returns the decoded JSON reply (HTTP and connection errors propagate)."""
        request = urllib.request.Request(url, data=body, headers=self._headers(), method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            raw = response.read()
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"POST {url}: the reply is not JSON: {_clip(raw.decode('utf-8', 'replace'))}",
                            "check that base_url points at an OpenAI-compatible API (usually ending in /v1)") from None

    def _headers(self):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _wait(self, attempt, retry_after):
        """Seconds to wait before retry ``attempt + 1``: exponential, at least Retry-After, capped."""
        return min(max(self.backoff * 2 ** attempt, retry_after or 0.0), MAX_WAIT_S)

    def _hint(self, status):
        """How to fix a non-retryable HTTP error."""
        if status in (401, 403):
            state = "set" if self.api_key_env and os.environ.get(self.api_key_env) else "not set"
            return f"check the API key in the environment variable {self.api_key_env} (now {state})"
        if status == 404:
            return "check base_url (usually ending in /v1) and the model name"
        if status in (400, 422):
            return "check the model name and the request parameters (max_tokens, temperature)"
        return None


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
    except BaseException:
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


def _completion_text(url, reply):
    """``choices[0].message.content`` of a chat reply, stripped."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise UserError(f"POST {url}: the reply has no choices[0].message.content: {_clip(json.dumps(reply))}",
                        "check that the server speaks the OpenAI chat-completions API") from None
    if not isinstance(content, str):
        raise UserError(f"POST {url}: choices[0].message.content is {type(content).__name__}, not text",
                        "a reasoning model may have spent max_tokens before answering: raise max_tokens")
    return content.strip()


def _embedding_rows(url, reply, expected):
    """The ``data[*].embedding`` vectors of an embeddings reply as float32 rows, sorted by ``index``."""
    data = reply.get("data") if isinstance(reply, dict) else None
    if not isinstance(data, list) or len(data) != expected:
        got = f"{len(data)} items" if isinstance(data, list) else "no data list"
        raise UserError(f"POST {url}: expected {expected} embeddings in data, got {got}")
    if not all(isinstance(item, dict) and isinstance(item.get("index"), int) and isinstance(item.get("embedding"), list)
               for item in data):
        raise UserError(f"POST {url}: an item of data lacks an integer index or an embedding list")
    items = sorted(data, key=lambda item: item["index"])
    if [item["index"] for item in items] != list(range(expected)):
        raise UserError(f"POST {url}: data indices are not 0..{expected - 1}")
    if len({len(item["embedding"]) for item in items}) != 1:
        raise UserError(f"POST {url}: embeddings in one reply have different lengths")
    return np.asarray([item["embedding"] for item in items], dtype=np.float32)


def _retryable(status):
    return status in RETRY_STATUSES or 500 <= status <= 599


def _retry_after(headers):
    """A numeric Retry-After header in seconds, else None (HTTP dates are ignored)."""
    try:
        value = float(headers.get("Retry-After")) if headers else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and value >= 0 else None


def _error_text(exc):
    """The server's error text: ``error.message`` of a JSON body, else the body itself, clipped."""
    try:
        raw = exc.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        raw = ""
    finally:
        exc.close()
    try:
        body = json.loads(raw)
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else error
        text = message if isinstance(message, str) and message else raw
    except json.JSONDecodeError:
        text = raw
    return _clip(text or exc.reason or "")


def _reason(exc):
    """The cause of a connection error, as text."""
    reason = getattr(exc, "reason", None) or exc
    return _clip(f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__)


def _exhausted_hint(problem):
    if problem.startswith("connection error"):
        return "check that the server is running and that base_url is right"
    return "the server kept failing; try again later or lower concurrency"


def _clip(text):
    """One line of at most ERROR_TEXT_CHARS characters."""
    return " ".join(str(text).split())[:ERROR_TEXT_CHARS]
