"""Sentence embeddings: a plain `Embedder` and the Ray Data stage `EmbedActor` built on it."""

from __future__ import annotations

import logging
import time

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)


class Embedder:
    """Texts → unit-length float32 vectors with a sentence-transformers model; usable without Ray.

    `model` is a bundled name ("minilm-l6" = all-MiniLM-L6-v2), a hub id or a local path.
    """

    def __init__(self, model: str = "minilm-l6", batch_size: int = 128, device: str = "cpu", threads: int | None = None):
        import torch
        from sentence_transformers import SentenceTransformer

        from actors.models import resolve_model

        if threads:
            # Ray pins an actor to as many threads as CPUs it reserved; this decouples the two.
            torch.set_num_threads(threads)
        started = time.monotonic()
        self.name = model
        self.batch_size = batch_size
        self.model = SentenceTransformer(resolve_model(model), device=device)
        log.info("embedder %s on %s ready in %.1fs", model, device, time.monotonic() - started)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """An Embedder is also the plain `texts -> vectors` callable (engine.builders.retrieval.Embed)."""
        return self.encode(texts)


# The name jobs/build.py imports for sPhinX knn retrieval: the same class.
SentenceEmbedder = Embedder


def vectors_to_arrow(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """A (n, d) float32 matrix as one fixed-size-list column (zero-copy from the flat buffer)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def arrow_to_vectors(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The inverse of vectors_to_arrow: a fixed-size-list column as an (n, d) float32 matrix."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if len(column) == 0:
        return np.zeros((0, column.type.list_size), dtype=np.float32)
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(column), column.type.list_size).astype(np.float32, copy=False)


class EmbedActor:
    """Reads `text_column` (string); writes `output_column` (fixed_size_list<float32, d>).

    Ray Data builds one per pool actor, so the model loads once per actor, not per batch.
    """

    def __init__(
        self, model: str, batch_size: int, device: str = "cpu", threads: int | None = None, text_column: str = "text", output_column: str = "embedding"
    ):
        self.embedder = Embedder(model, batch_size, device, threads)
        self.text_column, self.output_column = text_column, output_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.text_column not in batch.column_names:
            raise KeyError(f"EmbedActor needs a '{self.text_column}' column; the batch has {batch.column_names}")
        started = time.monotonic()
        texts = [text or "" for text in batch.column(self.text_column).to_pylist()]
        vectors = self.embedder.encode(texts)
        log.info("embedded %d texts in %.2fs", len(texts), time.monotonic() - started)
        return batch.append_column(self.output_column, vectors_to_arrow(vectors))
