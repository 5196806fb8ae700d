"""A fake OpenAI-compatible server for tests: chat completions and embeddings on 127.0.0.1, with failure controls."""

import json
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMPLETIONS = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"


def reply_for(prompt):
    """What the fake server answers to a user message."""
    return f"profile of: {prompt[:30]}"


def vector_for(text):
    """The fake server's deterministic 4-d embedding of a text."""
    return [float(len(text)), float(len(text) % 3), 1.0, -float(len(text))]


class FakeAPI:
    """State and controls of the fake OpenAI-compatible server.

    Attributes:
        counts: requests received per path.
        forced: statuses returned, one per request, before any success.
        retry_after: the Retry-After header sent with forced statuses and failures: a hundredth of a second unless
            a test sets it, so that retries do not wait the openai package's own backoff (half a second and more);
            None: no header.
        delay: seconds each request takes.
        fail_after: after this many successful completions every completion fails with ``fail_status``.
        reply: a JSON body returned as is instead of a real answer.
        authorization: the Authorization header of each request (None when absent).
        api_key: when set, requests without ``Authorization: Bearer <api_key>`` get a 401 (as vLLM's --api-key).
        style: None (minimal replies), 'ollama' or 'vllm': replies with the extra fields those servers send.
        max_in_flight: the most requests handled at the same time.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()
        self.forced = []
        self.retry_after = "0.01"
        self.delay = 0.0
        self.fail_after = None
        self.fail_status = 500
        self.reply = None
        self.authorization = []
        self.payloads = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.completions_done = 0
        self.base_url = None
        self.api_key = None
        self.style = None

    def enter(self, path, headers, payload):
        """Record a request; returns the status to fail it with, or None to answer it."""
        with self.lock:
            self.counts[path] += 1
            self.authorization.append(headers.get("Authorization"))
            self.payloads.append(payload)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if self.forced:
                return self.forced.pop(0)
            if path == COMPLETIONS and self.fail_after is not None:
                if self.completions_done >= self.fail_after:
                    return self.fail_status
                self.completions_done += 1
            return None

    def leave(self):
        with self.lock:
            self.in_flight -= 1


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the name http.server looks for)
        fake = self.server.fake
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = fake.enter(self.path, self.headers, payload)
        try:
            time.sleep(fake.delay)
            if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
                self.send_json(401, {"error": "Unauthorized"})  # vLLM's body for a wrong or missing key
            elif status is not None:
                self.send_json(status, {"error": {"message": f"forced {status}"}}, fake.retry_after)
            elif fake.reply is not None:
                self.send_json(200, fake.reply)
            elif self.path == COMPLETIONS:
                self.send_json(200, chat_reply(fake.style, payload))
            elif self.path == EMBEDDINGS:
                self.send_json(200, embeddings_reply(fake.style, payload))
            else:
                self.send_json(404, {"error": {"message": f"no route {self.path}"}})
        finally:
            fake.leave()

    def send_json(self, status, body, retry_after=None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def user_text(payload):
    return [message for message in payload["messages"] if message["role"] == "user"][-1]["content"]


def chat_reply(style, payload):
    """A chat reply: minimal, or with the fields Ollama's or vLLM's OpenAI-compatible servers add."""
    message = {"content": f"  {reply_for(user_text(payload))}\n"}
    if style is None:
        return {"choices": [{"message": message}]}
    usage = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    reply = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": payload["model"],
             "usage": usage}
    if style == "ollama":
        reply["system_fingerprint"] = "fp_ollama"
        choice = {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "stop"}
    else:  # vllm
        reply.update(prompt_logprobs=None, kv_transfer_params=None)
        choice = {"index": 0, "logprobs": None, "finish_reason": "stop", "stop_reason": None,
                  "message": {"role": "assistant", "reasoning_content": None, "tool_calls": [], **message}}
    return {**reply, "choices": [choice]}


def embeddings_reply(style, payload):
    if style is None:
        return {"data": shuffled_embeddings(payload["input"])}
    data = [{"object": "embedding", "index": index, "embedding": vector_for(text)}
            for index, text in enumerate(payload["input"])]
    reply = {"object": "list", "data": data, "model": payload["model"],
             "usage": {"prompt_tokens": len(data), "total_tokens": len(data)}}
    if style == "vllm":
        reply.update(id="embd-1", created=1700000000)
    return reply


def shuffled_embeddings(texts):
    data = [{"object": "embedding", "index": index, "embedding": vector_for(text)} for index, text in enumerate(texts)]
    random.Random(len(texts)).shuffle(data)
    if len(data) > 1 and data[0]["index"] == 0:
        data.reverse()  # never in input order, so the test proves the client sorts
    return data


def start_server():
    """Start a fake server in a daemon thread; returns (server, fake). Stop with ``server.shutdown()``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.fake = FakeAPI()
    server.fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1/"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    return server, server.fake
