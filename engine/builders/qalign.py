"""QAlign: stage I aligns questions (X question → its English original), stage II is English
instruction data. Two datasets, trained one after the other."""

from __future__ import annotations

from engine.builders.example import make_example
from engine.builders.pool import ENGLISH, Pool, query_text
from engine.languages import get_language

QUESTION, RESPONSE = "qalign_question", "qalign_response"
STAGE_ONE_INSTRUCTION = "Translate the following sentences from {language} to English."


def question_prompt(row: dict) -> str:
    return f"{STAGE_ONE_INSTRUCTION.format(language=get_language(row['lang']).name)}\n{query_text(row)}"


def build_qalign(pool: Pool) -> dict[str, list[dict]]:
    questions = [
        make_example(
            QUESTION,
            "question",
            question_prompt(row),
            query_text(pool.english[row["seed_id"]]),
            [row, pool.english[row["seed_id"]]],
            row["lang"],
            ENGLISH,
        )
        for row in pool.aligned
    ]
    # Stage II's English responses: one per seed that has an accepted translation.
    responses = [
        make_example(
            RESPONSE,
            "response",
            query_text(english),
            (english.get("output") or "").strip(),
            [english],
            ENGLISH,
            ENGLISH,
        )
        for english in pool.english.values()
    ]
    return {QUESTION: questions, RESPONSE: responses}
