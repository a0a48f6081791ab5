"""The one row type of every built dataset: chat messages plus a prompt/completion split.

`prompt` is everything the model is given (N-shot demonstrations included) and `completion` is
the only text the loss is computed on, so a trainer can mask the prompt; `messages` holds the same
two strings as one user turn and one assistant turn, for chat-template trainers.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

EXAMPLE_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("builder", pa.string()),
        ("mode", pa.string()),
        # lang: the non-English language the example trains (the output language when both sides
        # are non-English, 'en' when neither is): what the card counts and the mixer balances.
        ("lang", pa.string()),
        ("input_lang", pa.string()),
        ("output_lang", pa.string()),
        ("seed_id", pa.string()),
        ("messages", pa.list_(MESSAGE)),
        ("prompt", pa.string()),
        ("completion", pa.string()),
        # Provenance: the rows whose text the example is made of, the rows shown as
        # demonstrations, and the model and prompt version that translated them.
        ("source_ids", pa.list_(pa.string())),
        ("shot_ids", pa.list_(pa.string())),
        ("model", pa.string()),
        ("prompt_version", pa.string()),
        ("source", pa.string()),
    ]
)


def example_lang(input_lang: str, output_lang: str) -> str:
    if output_lang != "en":
        return output_lang
    return input_lang


def make_example(
    builder: str,
    mode: str,
    prompt: str,
    completion: str,
    sources: list[dict],
    input_lang: str,
    output_lang: str,
    shots: list[dict] = (),
) -> dict:
    """An example built from `sources` (rows of one seed, the first one decides provenance)."""
    source_ids = [row["id"] for row in sources]
    key = "\x1f".join((builder, mode, *source_ids))
    translated = next((row for row in sources if row.get("model")), sources[0])
    return {
        "id": hashlib.sha256(key.encode("utf-8")).hexdigest()[:20],
        "builder": builder,
        "mode": mode,
        "lang": example_lang(input_lang, output_lang),
        "input_lang": input_lang,
        "output_lang": output_lang,
        "seed_id": sources[0]["seed_id"],
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}],
        "prompt": prompt,
        "completion": completion,
        "source_ids": source_ids,
        "shot_ids": [row["id"] for row in shots],
        "model": translated.get("model"),
        "prompt_version": translated.get("prompt_version"),
        "source": sources[0].get("source"),
    }


def messages_column(prompt: pa.ChunkedArray | pa.Array, completion: pa.ChunkedArray | pa.Array) -> pa.ListArray:
    """`messages` from the prompt and completion columns (a user turn, then an assistant turn):
    a distributed build carries the two strings once and adds this column when it writes."""
    prompt, completion = (pa.chunked_array([c]) if isinstance(c, pa.Array) else c for c in (prompt, completion))
    prompt, completion = prompt.combine_chunks().cast(pa.string()), completion.combine_chunks().cast(pa.string())
    n = len(prompt)
    interleaved = np.empty(2 * n, np.int64)
    interleaved[0::2], interleaved[1::2] = np.arange(n), np.arange(n, 2 * n)
    contents = pa.concat_arrays([prompt, completion]).take(pa.array(interleaved))
    roles = pa.DictionaryArray.from_arrays(
        pa.array(np.tile(np.array([0, 1], np.int32), n)), pa.array(["user", "assistant"])
    ).cast(pa.string())
    turns = pa.StructArray.from_arrays([roles, contents], fields=list(MESSAGE))
    return pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32)), turns)
