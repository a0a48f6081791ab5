"""sPhinX LANG N-shot: each example shows N same-language demonstrations, then the instruction.

The demonstrations sit in the prompt, so loss falls on the final response only. They come from
the training split of the same language and never from the example's own seed: a validation
row never appears inside a training prompt, and no example sees its own answer.
"""

from __future__ import annotations

from engine.builders.example import make_example
from engine.builders.pool import query_text
from engine.builders.retrieval import Embed, knn_shots, random_shots

BUILDER = "sphinx"


def render_shots(shots: list[dict], query: str) -> str:
    """Demonstrations as instruction/response blocks, then the real instruction (no response)."""
    if not shots:
        return query
    blocks = [
        f"### Instruction:\n{query_text(shot)}\n\n### Response:\n{(shot.get('output') or '').strip()}" for shot in shots
    ]
    return "\n\n".join([*blocks, f"### Instruction:\n{query}"])


def _source_query(row: dict) -> str:
    # knn compares English sources: the bundled embedder is English, and a translation means the
    # same. A row without an English original (X-Instruction generation) has an English
    # instruction of its own.
    if row["lang"] == "en" or not (row.get("src_instruction") or "").strip():
        return query_text(row)
    return query_text({"instruction": row.get("src_instruction"), "input": row.get("src_input")})


def sphinx_language(
    lang: str, rows: list[dict], validation_seeds, shots: int, retrieval: str, seed: int, embed: Embed | None = None
) -> list[dict]:
    """The N-shot examples of one language's rows (its own seeds' rows, or the English originals
    for 'en'): the unit of work the Ray executor runs per language group."""
    if retrieval == "knn" and shots > 0 and embed is None:
        raise ValueError("sphinx retrieval 'knn' needs an embed function; pass one or use retrieval 'random'")
    # The pool's stable order, whatever order the rows arrived in: ties in knn break by it.
    rows = sorted(rows, key=lambda row: (row["seed_id"], row["id"]))
    train = [row for row in rows if row["seed_id"] not in validation_seeds]
    if retrieval == "knn":
        chosen = knn_shots(rows, train, shots, embed, _source_query)
    else:
        chosen = random_shots(rows, train, shots, seed)
    examples = []
    for row, demonstrations in zip(rows, chosen):
        prompt = render_shots(demonstrations, query_text(row))
        mode = f"{len(demonstrations)}-shot-{retrieval}" if demonstrations else "0-shot"
        examples.append(
            make_example(BUILDER, mode, prompt, (row.get("output") or "").strip(), [row], lang, lang, demonstrations)
        )
    return examples
