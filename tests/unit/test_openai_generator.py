"""Ring (b): OpenAIGenerator against a real HTTP server on 127.0.0.1 that answers from a script.

No mocks of httpx: retries, timeouts and the concurrency bound are seen from the server's side.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from actors.engines.openai_generator import RETRY_AFTER_CAP_S, OpenAIGenerator, parse_retry_after
from engine.config import ConfigError, ModelConfig, parse_config
from engine.protocols import ERROR, TOO_LONG, GenParams

KEY = "sk-unit-9f3b2c71-never-logged"
MESSAGES = [{"role": "system", "content": "Translate."}, {"role": "user", "content": "Hello there, world."}]


def ok(text: str = '{"instruction": "Bonjour"}', finish: str = "stop") -> tuple[int, dict, dict]:
    body = {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 17, "completion_tokens": 5},
    }
    return 200, {}, body


class ScriptedServer:
    """Answers each POST with `script(n, body, headers)` -> (status, headers, json body) or None
    (never answer); n counts requests from 0. Records requests and the peak of concurrent ones."""

    def __init__(self, script: Callable[[int, dict, dict], tuple[int, dict, dict] | None], delay: float = 0.0):
        self.script, self.delay = script, delay
        self.requests: list[tuple[dict, dict, float]] = []
        self.in_flight = self.peak = 0
        self.lock = threading.Lock()
        self.release = threading.Event()  # set at teardown: frees handlers that never answer
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    n = len(outer.requests)
                    outer.requests.append((body, dict(self.headers), time.monotonic()))
                    outer.in_flight += 1
                    outer.peak = max(outer.peak, outer.in_flight)
                try:
                    time.sleep(outer.delay)
                    reply = outer.script(n, body, dict(self.headers))
                    if reply is None:
                        outer.release.wait(10)
                        return
                    status, headers, payload = reply
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with outer.lock:
                        outer.in_flight -= 1

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(script, delay=0.0) -> ScriptedServer:
        servers.append(ScriptedServer(script, delay))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def generator(url: str, **fields) -> OpenAIGenerator:
    config = ModelConfig(
        **{"backend": "openai", "name": "test-model", "base_url": url, "max_retries": 2, "timeout_s": 5, **fields}
    )
    return OpenAIGenerator(config, backoff_s=0.01)


def generate(gen: OpenAIGenerator, params: GenParams = GenParams(max_tokens=64), messages=MESSAGES):
    return asyncio.run(gen.generate(messages, params))


def test_success_sends_the_request_and_reads_usage(serve):
    server = serve(lambda n, body, headers: ok())
    completion = generate(generator(server.url), GenParams(temperature=0.3, top_p=0.9, max_tokens=64))
    assert (completion.text, completion.prompt_tokens, completion.completion_tokens, completion.finish_reason) == (
        '{"instruction": "Bonjour"}',
        17,
        5,
        "stop",
    )
    body, headers, _ = server.requests[0]
    assert body["model"] == "test-model" and body["messages"] == MESSAGES
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.9, 64)
    assert "response_format" not in body and "repetition_penalty" not in body
    assert "Authorization" not in headers and "authorization" not in {k.lower() for k in headers}


def test_json_schema_goes_into_response_format_and_repetition_penalty_is_sent(serve):
    server = serve(lambda n, body, headers: ok())
    schema = {"type": "object", "properties": {"instruction": {"type": "string"}}, "required": ["instruction"]}
    generate(generator(server.url), GenParams(max_tokens=64, json_schema=schema, repetition_penalty=1.1))
    body = server.requests[0][0]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }
    assert body["repetition_penalty"] == 1.1


def test_length_finish_reason_passes_through(serve):
    server = serve(lambda n, body, headers: ok('{"instruction": "Bonj', finish="length"))
    assert generate(generator(server.url)).finish_reason == "length"


def test_429_then_200_is_retried_and_honours_retry_after(serve):
    server = serve(
        lambda n, body, headers: (429, {"Retry-After": "0.4"}, {"error": {"message": "slow down"}}) if n == 0 else ok()
    )
    completion = generate(generator(server.url))
    assert completion.finish_reason == "stop"
    assert len(server.requests) == 2
    waited = server.requests[1][2] - server.requests[0][2]
    assert waited >= 0.4, "Retry-After must be honoured (the backoff alone is ~0.01 s)"


def test_5xx_gives_error_after_max_retries(serve):
    server = serve(lambda n, body, headers: (500, {}, {"error": {"message": "boom"}}))
    completion = generate(generator(server.url, max_retries=3))
    assert completion.finish_reason == ERROR
    assert completion.text == "http 500 after 3 retries"
    assert completion.completion_tokens == 0 and completion.prompt_tokens > 0
    assert len(server.requests) == 4


def test_a_server_that_never_answers_times_out_in_bounded_time(serve):
    server = serve(lambda n, body, headers: None)
    started = time.monotonic()
    completion = generate(generator(server.url, timeout_s=0.5, max_retries=1))
    elapsed = time.monotonic() - started
    assert completion.finish_reason == ERROR and completion.text == "timeout after 1 retries"
    assert len(server.requests) == 2
    assert 1.0 <= elapsed < 3.0


def test_connection_refused_is_retried_then_an_error():
    server = ScriptedServer(lambda n, body, headers: ok())
    url = server.url
    server.close()  # nothing listens on the port any more
    completion = generate(generator(url, max_retries=1))
    assert completion.finish_reason == ERROR
    assert completion.text.startswith("connection error") and completion.text.endswith("after 1 retries")


def test_400_is_not_retried_and_says_why(serve):
    server = serve(lambda n, body, headers: (400, {}, {"error": {"message": "unknown field 'top_p'"}}))
    completion = generate(generator(server.url, max_retries=3))
    assert len(server.requests) == 1
    assert completion.finish_reason == ERROR
    assert completion.text == "http 400: unknown field 'top_p'"


def test_context_length_refusal_is_too_long(serve):
    message = "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens."
    server = serve(lambda n, body, headers: (400, {}, {"error": {"message": message}}))
    completion = generate(generator(server.url))
    assert completion.finish_reason == TOO_LONG and len(server.requests) == 1


def test_malformed_200_is_an_error_row_not_an_exception(serve):
    server = serve(lambda n, body, headers: (200, {}, {"choices": []}))
    assert generate(generator(server.url)).finish_reason == ERROR


def test_api_key_comes_from_the_named_variable(serve, monkeypatch):
    monkeypatch.setenv("BF_UNIT_KEY", KEY)
    server = serve(lambda n, body, headers: ok())
    gen = generator(server.url, api_key_env="BF_UNIT_KEY")
    generate(gen)
    headers = {k.lower(): v for k, v in server.requests[0][1].items()}
    assert headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(gen) and KEY not in str(gen) and "BF_UNIT_KEY" in repr(gen)


def test_key_never_reaches_logs_or_error_text(serve, monkeypatch, caplog):
    monkeypatch.setenv("BF_UNIT_KEY", KEY)
    # A server that echoes the Authorization header back in its error: the cause must not carry it.
    server = serve(
        lambda n, body, headers: (401, {}, {"error": {"message": f"bad key {headers.get('Authorization')}"}})
    )
    caplog.set_level("DEBUG")
    completion = generate(generator(server.url, api_key_env="BF_UNIT_KEY"))
    assert completion.finish_reason == ERROR and completion.text.startswith("http 401")
    assert KEY not in completion.text
    assert KEY not in caplog.text


def test_missing_key_variable_is_a_clear_error_naming_it(monkeypatch):
    monkeypatch.delenv("BF_UNIT_MISSING", raising=False)
    with pytest.raises(RuntimeError, match="BF_UNIT_MISSING"):
        generator("http://127.0.0.1:9/v1", api_key_env="BF_UNIT_MISSING")


def test_concurrency_bound_is_respected(serve):
    server = serve(lambda n, body, headers: ok(), delay=0.2)
    gen = generator(server.url, max_concurrency=3)

    async def many():
        return await asyncio.gather(*(gen.generate(MESSAGES, GenParams(max_tokens=8)) for _ in range(10)))

    completions = asyncio.run(many())
    assert all(c.finish_reason == "stop" for c in completions)
    assert len(server.requests) == 10
    assert server.peak == 3


def test_a_new_event_loop_gets_a_new_client(serve):
    # Ray Data may run the actor's coroutines on a loop other than the one that built the client.
    server = serve(lambda n, body, headers: ok())
    gen = generator(server.url)
    assert generate(gen).finish_reason == "stop"
    assert generate(gen).finish_reason == "stop"


def test_count_tokens_is_a_ceiling_of_chars_over_four():
    gen = generator("http://127.0.0.1:9/v1")
    assert [gen.count_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]
    assert (gen.backend, gen.model_name) == ("openai", "test-model")


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        ("0.5", 0.5),
        ("-2", 0.0),
        ("99999", RETRY_AFTER_CAP_S),
        ("soon", None),
        ("nan", None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 5))
    assert 3.0 <= parse_retry_after(date) <= 5.0


def test_config_needs_base_url_and_an_env_name_not_a_key():
    base = {"seeds": {"paths": ["x.jsonl"]}, "languages": {"targets": ["fr"]}}
    with pytest.raises(ConfigError, match="base_url"):
        parse_config({**base, "model": {"backend": "openai"}})
    with pytest.raises(ConfigError, match="NAME of an environment variable") as error:
        parse_config(
            {**base, "model": {"backend": "openai", "base_url": "http://h/v1", "api_key_env": "sk-live-abc123"}}
        )
    assert "sk-live-abc123" not in str(error.value)
