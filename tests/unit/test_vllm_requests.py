"""What VLLMGenerator asks of its engine for one request: the answer only when it is done
(RequestOutputKind.FINAL_ONLY, as vllm.LLM.generate asks), so the actor does no Python work per
generated token of each row. A stand-in engine records the request; vLLM's own SamplingParams."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from actors.engines.vllm_generator import VLLMGenerator
from engine.protocols import GenParams


class RecordingEngine:
    def __init__(self):
        self.requests = []

    async def generate(self, prompt, sampling, request_id):
        self.requests.append(sampling)
        choice = SimpleNamespace(text='{"instruction": "Bonjour"}', token_ids=[1, 2, 3], finish_reason="stop")
        yield SimpleNamespace(outputs=[choice])


def test_a_request_asks_for_its_final_answer_only():
    from vllm.sampling_params import RequestOutputKind

    generator = object.__new__(VLLMGenerator)  # no engine start: only what generate() uses
    generator.engine, generator.max_model_len = RecordingEngine(), 4096
    generator.prompt_ids = lambda messages: [7] * 10
    schema = {"type": "object", "properties": {"instruction": {"type": "string"}}}
    done = asyncio.run(generator.generate([{"role": "user", "content": "Hello"}], GenParams(json_schema=schema)))
    [sampling] = generator.engine.requests
    assert sampling.output_kind == RequestOutputKind.FINAL_ONLY
    assert sampling.structured_outputs.json == schema
    assert (done.text, done.prompt_tokens, done.completion_tokens, done.finish_reason) == (
        '{"instruction": "Bonjour"}',
        10,
        3,
        "stop",
    )
