"""The client (the openai package plus our errors, concurrency and cache) against a real local HTTP server: replies,
retries, errors, the resumable cache, and Ollama- and vLLM-style endpoints."""

import json
import socket
from collections import Counter

import numpy as np
import pytest
from fake_llm import COMPLETIONS, EMBEDDINGS, reply_for, vector_for

from utils.errors import UserError
from utils.llm_client import LLMClient, prompt_sha256, write_descriptions


def make_client(api, **kwargs):
    options = {"model": "chat-m", "embedding_model": "embed-m", "max_retries": 2}
    return LLMClient(api.base_url, **{**options, **kwargs})


def numbered_prompts(count):
    return {str(index): f"describe entity number {index}" for index in range(count)}


def cache_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_complete_sends_the_chat_request_and_returns_the_stripped_reply(api):
    text = make_client(api, temperature=0.3, max_tokens=50).complete("a user who likes noir films", system="be brief")
    assert text == reply_for("a user who likes noir films")
    assert api.counts == {COMPLETIONS: 1}
    assert api.payloads[0] == {"model": "chat-m", "temperature": 0.3, "max_tokens": 50, "messages": [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "a user who likes noir films"}]}


def test_embed_returns_float32_rows_in_input_order_across_batches(api):
    texts = ["a", "bb", "ccc", "dddd", "eeeee", "ffffff", "g"]
    matrix = make_client(api).embed(texts, batch_size=3)
    assert api.counts == {EMBEDDINGS: 3}
    assert [len(payload["input"]) for payload in api.payloads] == [3, 3, 1]
    assert matrix.dtype == np.float32 and matrix.shape == (7, 4)
    np.testing.assert_array_equal(matrix, np.array([vector_for(text) for text in texts], dtype=np.float32))


def test_server_errors_are_retried_then_the_call_succeeds(api):
    api.forced = [500, 503]
    assert make_client(api).complete("hello") == reply_for("hello")
    assert api.counts[COMPLETIONS] == 3


def test_429_is_retried(api):
    api.forced, api.retry_after = [429], "0.1"
    assert make_client(api).complete("hello") == reply_for("hello")
    assert api.counts[COMPLETIONS] == 2


def test_exhausted_retries_raise_a_one_line_user_error_naming_the_status(api):
    api.forced = [503] * 10
    with pytest.raises(UserError) as caught:
        make_client(api, max_retries=2).complete("hello")
    message = str(caught.value)
    assert api.counts[COMPLETIONS] == 3
    assert "\n" not in message
    assert "HTTP 503" in message and "forced 503" in message and "3 tries" in message
    assert api.base_url.rstrip("/") + "/chat/completions" in message


def test_unauthorized_is_not_retried_and_names_the_key_variable(api):
    api.forced = [401]
    with pytest.raises(UserError, match=r"HTTP 401.*MY_LLM_KEY") as caught:
        make_client(api, api_key_env="MY_LLM_KEY").complete("hello")
    assert api.counts[COMPLETIONS] == 1
    assert "\n" not in str(caught.value)


def test_bearer_key_is_read_from_the_env_var_and_left_out_when_unset(api, monkeypatch):
    client = make_client(api, api_key_env="MY_LLM_KEY")
    monkeypatch.setenv("MY_LLM_KEY", "sk-test")
    client.complete("with key")
    monkeypatch.delenv("MY_LLM_KEY")
    client.embed(["without key"])
    assert api.authorization == ["Bearer sk-test", None]


def test_connection_refused_is_retried_then_a_user_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    client = LLMClient(f"http://127.0.0.1:{port}/v1", model="m", max_retries=1)
    with pytest.raises(UserError, match=r"after 2 tries: connection error.*\(hint: check that the server is running"):
        client.complete("hello")


def test_a_reply_of_the_wrong_shape_names_what_is_missing(api):
    api.reply = {"choices": []}
    with pytest.raises(UserError, match=r"chat/completions: the reply has no choices\[0\]\.message\.content"):
        make_client(api).complete("hello")
    api.reply = {"data": [{"index": 0}]}
    with pytest.raises(UserError, match=r"embeddings: an item of data lacks an integer index or an embedding"):
        make_client(api).embed(["x"])


def test_a_missing_model_is_a_user_error_before_any_request(api):
    with pytest.raises(UserError, match="no chat model.*hint: pass model="):
        make_client(api, model=None).complete("hello")
    with pytest.raises(UserError, match="no embedding model.*hint: pass embedding_model="):
        make_client(api, embedding_model=None).embed(["x"])
    assert api.counts == {}


def test_write_descriptions_keeps_within_the_concurrency_bound(api, tmp_path):
    api.delay = 0.05
    prompts = numbered_prompts(12)
    found = write_descriptions(make_client(api, concurrency=3), prompts, tmp_path / "cache.jsonl", progress=False)
    assert found == {entity: reply_for(prompt) for entity, prompt in prompts.items()}
    assert api.counts[COMPLETIONS] == 12
    assert 2 <= api.max_in_flight <= 3


def test_an_interrupted_run_resumes_from_the_cache(api, tmp_path):
    cache = tmp_path / "sub" / "cache.jsonl"
    prompts = numbered_prompts(12)
    api.fail_after = 5
    with pytest.raises(UserError, match="HTTP 500"):
        write_descriptions(make_client(api, concurrency=3), prompts, cache, system="be brief", progress=False)
    first = cache_lines(cache)
    assert len(first) == 5
    assert all(line["prompt_sha256"] == prompt_sha256(prompts[line["id"]]) for line in first)

    api.fail_after, api.counts = None, Counter()
    found = write_descriptions(make_client(api, concurrency=3), prompts, cache, system="be brief", progress=True)
    assert api.counts[COMPLETIONS] == 7
    assert found == {entity: reply_for(prompt) for entity, prompt in prompts.items()}
    assert list(found) == list(prompts)
    assert sorted(line["id"] for line in cache_lines(cache)) == sorted(prompts)


def test_stale_prompt_hashes_and_a_truncated_last_line_are_ignored(api, tmp_path):
    cache = tmp_path / "cache.jsonl"
    prompts = {"a": "prompt a", "b": "prompt b, changed since", "c": "prompt c"}
    kept = {"id": "a", "prompt_sha256": prompt_sha256("prompt a"), "description": "cached a"}
    stale = {"id": "b", "prompt_sha256": prompt_sha256("prompt b"), "description": "old b"}
    truncated = json.dumps({"id": "c", "prompt_sha256": prompt_sha256("prompt c"), "description": "cut"})[:-9]
    cache.write_text(json.dumps(kept) + "\n" + json.dumps(stale) + "\n" + truncated)

    found = write_descriptions(make_client(api), prompts, cache, progress=False)
    assert found == {"a": "cached a", "b": reply_for(prompts["b"]), "c": reply_for("prompt c")}
    assert api.counts[COMPLETIONS] == 2

    # the truncated line was ended, so the lines appended after it are whole and the next run requests nothing
    assert write_descriptions(make_client(api), prompts, cache, progress=False) == found
    assert api.counts[COMPLETIONS] == 2


def test_an_ollama_style_endpoint_needs_no_key(api):
    """Ollama serves the API at http://HOST:11434/v1, asks for no key, names models like llama3.2:3b."""
    api.style = "ollama"
    base_url = api.base_url.rstrip("/")
    client = LLMClient(base_url, model="llama3.2:3b", embedding_model="nomic-embed-text", max_retries=0)
    assert client.complete("a user who likes jazz") == reply_for("a user who likes jazz")
    matrix = client.embed(["a", "bb"])
    np.testing.assert_array_equal(matrix, np.array([vector_for("a"), vector_for("bb")], dtype=np.float32))
    assert api.authorization == [None, None]
    assert [payload["model"] for payload in api.payloads] == ["llama3.2:3b", "nomic-embed-text"]


def test_a_vllm_style_endpoint_gets_its_api_key_and_a_missing_key_is_one_line(api, monkeypatch):
    """vLLM serves the API at http://HOST:8000/v1 and, started with --api-key, refuses other requests with 401."""
    api.style, api.api_key = "vllm", "token-abc123"
    client = LLMClient(api.base_url, model="Qwen/Qwen2.5-1.5B-Instruct", embedding_model="BAAI/bge-small-en-v1.5",
                       api_key_env="VLLM_API_KEY", max_retries=0)
    with pytest.raises(UserError, match=r"HTTP 401: Unauthorized .*VLLM_API_KEY \(now not set\)") as caught:
        client.complete("hello")
    assert "\n" not in str(caught.value)
    monkeypatch.setenv("VLLM_API_KEY", "token-abc123")
    assert client.complete("hello") == reply_for("hello")
    assert client.embed(["xyz"]).shape == (1, 4)
    assert api.authorization == [None, "Bearer token-abc123", "Bearer token-abc123"]


def test_not_found_is_not_retried_and_points_at_base_url_and_model(api):
    api.forced = [404]
    with pytest.raises(UserError, match=r"chat/completions failed: HTTP 404: forced 404 \(hint: check base_url"):
        make_client(api).complete("hello")
    assert api.counts[COMPLETIONS] == 1


def test_a_request_given_up_at_the_deadline_logs_nothing_afterwards(caplog):
    """The package keeps retrying in the thread left behind (it cannot be killed): its "Retrying request" lines
    came out after the run's one error line, into whatever stderr was open then (issue 24)."""
    import logging
    import time

    caplog.set_level(logging.DEBUG)
    with socket.socket() as silent:  # accepts connections (the backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = LLMClient(f"http://127.0.0.1:{silent.getsockname()[1]}/v1", model="m", timeout=0.3,
                           max_retries=5, deadline=0.5)
        with pytest.raises(UserError, match="no answer within the deadline of 0.5 s"):
            client.complete("hello")
        given_up = time.time()
        time.sleep(1.5)  # the abandoned thread times out and retries meanwhile
    late = [r.getMessage() for r in caplog.records if r.created >= given_up and r.levelno >= logging.INFO
            and r.threadName.startswith("llm-request")]
    assert late == []
