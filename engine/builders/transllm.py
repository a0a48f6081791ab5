"""TransLLM translation chain-of-thought: a target-language query is answered with
`<EN> English query <RESPONSE> English answer <XX> target answer`, XX the language's code in
capitals; at inference the text after the language tag that follows <RESPONSE> is the answer."""

from __future__ import annotations

from engine.builders.example import make_example
from engine.builders.pool import Pool, query_text

BUILDER = "transllm"


def language_tag(lang: str) -> str:
    return f"<{lang.upper()}>"


def tcot_completion(english: dict, row: dict) -> str:
    return (
        f"<EN> {query_text(english)} <RESPONSE> {(english.get('output') or '').strip()} "
        f"{language_tag(row['lang'])} {(row.get('output') or '').strip()}"
    )


def build_transllm(pool: Pool) -> dict[str, list[dict]]:
    examples = []
    for row in pool.aligned:
        english = pool.english[row["seed_id"]]
        examples.append(
            make_example(
                BUILDER,
                "tcot",
                query_text(row),
                tcot_completion(english, row),
                [row, english],
                row["lang"],
                row["lang"],
            )
        )
    return {BUILDER: examples}
