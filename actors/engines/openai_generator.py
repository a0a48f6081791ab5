"""engine.generation.Generator over any OpenAI-compatible chat endpoint (a hosted API, or a
`vllm serve` cluster): POST {base_url}/chat/completions, bounded concurrency, a deadline per
request, retries with backoff. A request that still fails is a row problem (finish_reason ERROR,
the cause in the text), never an exception.

The API key is read from the environment variable the config names and goes only into the
Authorization header: it is never logged, repr'd, raised or written anywhere.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import os
import random
import time

from engine.config import ModelConfig
from engine.protocols import ERROR, TOO_LONG, Completion, GenParams

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})  # and any other 5xx
RETRY_AFTER_CAP_S = 60.0  # a server asking for longer is not waited for beyond this
BACKOFF_CAP_S = 30.0
# How a 400 says the prompt plus max_tokens does not fit (OpenAI's code, vLLM's two messages).
TOO_LONG_MARKERS = ("context_length_exceeded", "maximum context length", "max_model_len")
CHARS_PER_TOKEN = 4  # no tokenizer on this side: ~4 characters a token for English-like text


class OpenAIGenerator:
    backend = "openai"

    def __init__(self, config: ModelConfig, backoff_s: float = 0.5):
        if not config.base_url:
            raise ValueError("model.backend is 'openai' but model.base_url is not set (e.g. http://127.0.0.1:8000/v1)")
        self.model_name = config.name
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.backoff_s = backoff_s  # first retry waits about this long, doubling each time
        self._api_key: str | None = None
        if config.api_key_env:
            self._api_key = os.environ.get(config.api_key_env) or None
            if self._api_key is None:
                raise RuntimeError(
                    f"model.api_key_env names the environment variable {config.api_key_env}, which is not set "
                    "(or empty) where this actor runs: export it in the environment the Ray nodes start in"
                )
        # httpx logs one INFO line per request: thousands a batch. Ours are per failure only.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        self._client = None  # built lazily inside the event loop that uses it (Ray Data runs its own)
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        key = f"from ${self.config.api_key_env}" if self.config.api_key_env else "none"
        return f"OpenAIGenerator(model={self.model_name!r}, url={self.url!r}, api_key={key})"

    def count_tokens(self, text: str) -> int:
        """An estimate, ceil(len / 4): hosted endpoints expose no tokenizer. Used for budgets only;
        the token counts on rows come from the response's `usage`."""
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def _prompt_estimate(self, messages: list[dict]) -> int:
        return sum(self.count_tokens(str(m.get("content") or "")) + 4 for m in messages)

    def _ensure_client(self):
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import httpx

            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            limits = httpx.Limits(
                max_connections=self.config.max_concurrency, max_keepalive_connections=self.config.max_concurrency
            )
            self._client = httpx.AsyncClient(headers=headers, limits=limits, timeout=None)  # the deadline is ours
            self._semaphore = asyncio.Semaphore(self.config.max_concurrency)
            self._loop = loop
        return self._client

    def _body(self, messages: list[dict], params: GenParams) -> dict:
        body = {
            "model": self.config.name,
            "messages": messages,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
        }
        if params.repetition_penalty != 1.0:  # a vLLM extension; hosted APIs may refuse unknown fields
            body["repetition_penalty"] = params.repetition_penalty
        if params.json_schema:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": params.json_schema, "strict": True},
            }
        return body

    async def generate(self, messages: list[dict], params: GenParams) -> Completion:
        import httpx

        client = self._ensure_client()
        body = self._body(messages, params)
        estimate = self._prompt_estimate(messages)
        retries = self.config.max_retries
        # One slot per logical request, backoff included: under a 429 the waiting requests throttle
        # this actor instead of letting queued ones take their slots and hammer the endpoint.
        async with self._semaphore:
            for attempt in range(retries + 1):
                retry_after = None
                try:
                    async with asyncio.timeout(self.config.timeout_s):
                        response = await client.post(self.url, json=body)
                except TimeoutError:
                    cause = "timeout"
                except httpx.TransportError as error:
                    cause = f"connection error ({type(error).__name__})"
                else:
                    status = response.status_code
                    if status == 200:
                        return self._completion(response, estimate)
                    if status not in RETRY_STATUS and status < 500:
                        return self._refused(response, estimate)
                    cause = f"http {status}"
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                if attempt == retries:
                    break
                delay = retry_after if retry_after is not None else self._backoff(attempt)
                log.warning(
                    "request to %s failed (%s); retry %d/%d in %.1fs", self.url, cause, attempt + 1, retries, delay
                )
                await asyncio.sleep(delay)
        log.warning("request to %s failed (%s) after %d retries", self.url, cause, retries)
        return Completion(f"{cause} after {retries} retries", estimate, 0, ERROR)

    def _backoff(self, attempt: int) -> float:
        # Exponential with jitter, so actors that failed together do not retry in lockstep.
        return min(BACKOFF_CAP_S, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)

    def _completion(self, response, estimate: int) -> Completion:
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            finish = choice.get("finish_reason") or "stop"
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            return Completion("malformed response (no choices[0].message)", estimate, 0, ERROR)
        usage = data.get("usage") or {}
        prompt = usage.get("prompt_tokens") or estimate
        generated = usage.get("completion_tokens")
        return Completion(text, prompt, self.count_tokens(text) if generated is None else generated, finish)

    def _refused(self, response, estimate: int) -> Completion:
        """A 4xx other than 429: retrying sends the same request again, so it is not retried."""
        try:
            message = str(response.json().get("error", {}).get("message", "")) or response.text
        except (ValueError, AttributeError):
            message = response.text
        lowered = message.lower()
        if any(marker in lowered for marker in TOO_LONG_MARKERS):
            return Completion("", estimate, 0, TOO_LONG)  # as the vLLM backend does: no retry helps
        cause = f"http {response.status_code}: {' '.join(message.split())[:120]}"
        if self._api_key:
            cause = cause.replace(self._api_key, "***")  # in case a server echoes what it was sent
        log.warning("request to %s refused: %s", self.url, cause)
        return Completion(cause, estimate, 0, ERROR)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped; None if absent or bad."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)
