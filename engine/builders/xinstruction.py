"""X-Instruction format: the English instruction with "Answer in {Language}." appended, answered by
the target-language response.

A translated row gives its English original's instruction (and English input, like the
instruction before it) and its translated output. A row of X-Instruction's generation mode
already is such a pair: its instruction was written in English, directive included, for a
target-language text, and is taken as it is.
"""

from __future__ import annotations

from engine.builders.example import make_example
from engine.builders.pool import ENGLISH, Pool, query_text
from engine.languages import get_language
from engine.rows.prompts import with_directive

BUILDER = "xinstruction"


def directive_prompt(english: dict, lang: str) -> str:
    instruction = with_directive((english.get("instruction") or "").strip(), get_language(lang).name)
    return query_text({"instruction": instruction, "input": english.get("input")})


def build_xinstruction(pool: Pool) -> dict[str, list[dict]]:
    examples = []
    for row in pool.rows:
        completion = (row.get("output") or "").strip()
        english = pool.english.get(row["seed_id"])
        if english is None:
            sources, prompt = [row], query_text(row)
        else:
            sources, prompt = [row, english], directive_prompt(english, row["lang"])
        examples.append(make_example(BUILDER, "answer_in", prompt, completion, sources, ENGLISH, row["lang"]))
    return {BUILDER: examples}
