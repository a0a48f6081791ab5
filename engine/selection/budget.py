"""X-Instruction diversification: per language, cluster the generated English instructions and keep
the rows nearest each centroid first, across clusters, up to a per-language budget.

Pure: the embedding model is passed in as a callable (actors.engines.embed.Embedder.encode, or a fake in
tests), so this runs the same on the driver, inside a Ray task, or in a unit test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from engine.reasons import make_reason
from engine.rows.prompts import without_directive
from engine.selection.cluster import assign_clusters, fit_centroids, nearest_first_select, sample_positions

BUDGET_PER_LANGUAGE = 32_000  # X-Instruction: 32k samples per language
OVER_BUDGET = make_reason("diversity_budget")  # reason of a row left out by the budget


@dataclass(frozen=True)
class Diversified:
    keep: np.ndarray  # bool per row: selected within its language's budget
    cluster: np.ndarray  # int32 per row: its cluster within its own language
    similarity: np.ndarray  # float32 per row: cosine to its centroid

    def reason(self, index: int) -> str | None:
        """None for a kept row; the rejection reason for a row the budget left out."""
        return None if self.keep[index] else OVER_BUDGET


def diversify_embeddings(
    embeddings: np.ndarray,
    langs: Sequence[str],
    budget: int = BUDGET_PER_LANGUAGE,
    clusters: int = 256,
    sample_size: int = 100_000,
    seed: int = 0,
) -> Diversified:
    """Per language: fit k-means on a bounded sample, assign all, keep nearest-first up to budget."""
    langs = np.asarray(langs, dtype=object)
    if len(langs) != len(embeddings):
        raise ValueError(f"{len(embeddings)} embeddings but {len(langs)} languages: they must be row-aligned")
    keep = np.zeros(len(langs), dtype=bool)
    cluster = np.zeros(len(langs), dtype=np.int32)
    similarity = np.zeros(len(langs), dtype=np.float32)
    for lang in sorted(set(langs.tolist())):
        rows = np.flatnonzero(langs == lang)
        vectors = embeddings[rows]
        centroids = fit_centroids(vectors[sample_positions(len(rows), sample_size, seed)], clusters, seed)
        labels, sims = assign_clusters(vectors, centroids)
        keep[rows[nearest_first_select(labels, sims, budget)]] = True
        cluster[rows], similarity[rows] = labels, sims
    return Diversified(keep, cluster, similarity)


def diversify_instructions(
    instructions: Sequence[str],
    langs: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
    budget: int = BUDGET_PER_LANGUAGE,
    clusters: int = 256,
    sample_size: int = 100_000,
    seed: int = 0,
) -> Diversified:
    """Embed the English instructions with `embed`, then diversify_embeddings."""
    embeddings = np.asarray(embed(list(instructions)), dtype=np.float32)
    return diversify_embeddings(embeddings, langs, budget, clusters, sample_size, seed)


def diversify_over_budget(
    instructions: Sequence[str | None],
    langs: Sequence[str | None],
    statuses: Sequence[str],
    budget: int,
    embed: Callable[[list[str]], np.ndarray],
    clusters: int,
    sample_size: int,
    seed: int,
) -> tuple[list[int], Diversified | None]:
    """The accepted rows of languages over `budget` (their positions) and what diversification
    decided for them; ([], None) when every language is within budget (nothing is embedded)."""
    accepted = [i for i, status in enumerate(statuses) if status == "accepted"]
    counts: dict[str, int] = {}
    for i in accepted:
        counts[langs[i]] = counts.get(langs[i], 0) + 1
    over = {lang for lang, count in counts.items() if count > budget}
    chosen = [i for i in accepted if langs[i] in over]
    if not chosen:
        return [], None
    # The English instruction without its "Answer in X." directive: that is what varies.
    texts = [without_directive(instructions[i]) for i in chosen]
    return chosen, diversify_instructions(texts, [langs[i] for i in chosen], embed, budget, clusters, sample_size, seed)


def apply_budget_table(
    table: pa.Table, budget: int, embed: Callable[[list[str]], np.ndarray], clusters: int, sample_size: int, seed: int
) -> pa.Table:
    """X-Instruction after generation, on an Arrow table (one language's rows, or any group of whole
    languages): where a language has more accepted pairs than `budget`, keep the most diverse ones
    and reject the rest (reason diversity_budget, with their cluster), so nothing is lost.
    Languages within budget are left as they are, and nothing is embedded for them."""
    statuses = table.column("status").to_pylist()
    langs = table.column("lang").to_pylist()
    if (
        max(Counter(lang for lang, status in zip(langs, statuses) if status == "accepted").values(), default=0)
        <= budget
    ):
        return table  # the common case: nothing over budget, no text read into Python
    chosen, result = diversify_over_budget(
        table.column("instruction").to_pylist(), langs, statuses, budget, embed, clusters, sample_size, seed
    )
    if result is None:
        return table
    cluster = table.column("cluster").to_pylist()
    reasons = table.column("reason").to_pylist()
    for position, i in enumerate(chosen):
        cluster[i] = int(result.cluster[position])
        reason = result.reason(position)
        if reason is not None:
            statuses[i], reasons[i] = "rejected", reason
    for name, values in (("status", statuses), ("reason", reasons), ("cluster", cluster)):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), pa.array(values, table.schema.field(index).type))
    return table
