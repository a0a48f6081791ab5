"""The CTranslate2 backend on a real converted model: a tiny random MarianMT with a tokenizer trained
here, converted with CTranslate2's own converter. No download; translation quality is not tested
(the model is random), only loading, batching, order, blanks, determinism and the language checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.languages import LANGUAGES
from engine.mt_codes import target_codes

pytestmark = pytest.mark.integration

pytest.importorskip("ctranslate2")

MAX_POSITIONS = 64  # small, so the "long" text below overruns it as a long segment overruns Marian's 512
SENTENCES = [
    ("The cat sleeps on the warm mat.", "O gato dorme no tapete quente."),
    ("Please translate this sentence.", "Por favor, traduza esta frase."),
    ("The weather is nice today.", "O tempo está bom hoje."),
    ("I would like a cup of coffee.", "Eu gostaria de uma xícara de café."),
    ("Where is the train station?", "Onde fica a estação de trem?"),
    ("We read books in the library.", "Nós lemos livros na biblioteca."),
    ("My brother plays football on Sundays.", "Meu irmão joga futebol aos domingos."),
    ("The children are learning to swim.", "As crianças estão aprendendo a nadar."),
]
TEXTS = [
    "The cat sleeps.",
    "Where is the library?",
    "   ",
    "My brother reads books on Sundays.",
    " ".join(["The children are learning to swim in the warm weather."] * 12),  # longer than MAX_POSITIONS
]


def build_tokenizer(folder: Path) -> list[str]:
    """A SentencePiece-like BPE tokenizer trained on SENTENCES, saved into folder; returns its files.
    It knows one multi-target label, >>por<<, as an OPUS-MT en-mul vocabulary would."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(
        [s for pair in SENTENCES for s in pair],
        trainers.BpeTrainer(vocab_size=300, special_tokens=["</s>", "<unk>", ">>por<<"]),
    )
    # <pad> last, as in OPUS-MT: CTranslate2's Marian converter drops the last vocabulary entry.
    tok.add_special_tokens(["<pad>"])
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tok.token_to_id("</s>"))]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="</s>", unk_token="<unk>", pad_token="<pad>", model_max_length=MAX_POSITIONS
    )
    return [Path(path).name for path in wrapped.save_pretrained(folder)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The converted CTranslate2 folder (float32) of a tiny random MarianMT, with its tokenizer files."""
    import torch
    from ctranslate2.converters import TransformersConverter
    from transformers import AutoTokenizer, MarianConfig, MarianMTModel

    hf_dir = tmp_path_factory.mktemp("marian-hf")
    tokenizer_files = build_tokenizer(hf_dir)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    torch.manual_seed(0)
    # A large init_std makes the random outputs depend on the input, so the order checks mean something.
    config = MarianConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=MAX_POSITIONS,
        init_std=1.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    MarianMTModel(config).save_pretrained(hf_dir)
    out_dir = tmp_path_factory.mktemp("ct2") / "tiny-marian-en-pt"
    converter = TransformersConverter(str(hf_dir), copy_files=tokenizer_files)
    return Path(converter.convert(str(out_dir), quantization="float32"))


@pytest.fixture(scope="module")
def backend(model_dir):
    from actors.engines.mt_ctranslate2 import CTranslate2Backend

    backend = CTranslate2Backend(str(model_dir), convention="marian", batch_size=8, max_decoding_length=24)
    yield backend
    backend.close()


def test_loads_and_names_the_model(backend, model_dir):
    assert backend.name == "ctranslate2:tiny-marian-en-pt"
    assert (model_dir / "model.bin").exists() and (model_dir / "tokenizer.json").exists()


def test_batch_keeps_order_and_blanks(backend):
    portuguese = LANGUAGES["pt"]
    outputs = backend.translate_batch(TEXTS, portuguese)
    assert len(outputs) == len(TEXTS) and all(isinstance(out, str) for out in outputs)
    assert outputs[2] == ""
    assert all(out == out.strip() for out in outputs)
    # Each text on its own must give what it gave in the batch: the batch was not reordered.
    assert [backend.translate_batch([text], portuguese)[0] for text in TEXTS] == outputs
    assert len({out for text, out in zip(TEXTS, outputs) if text.strip()}) > 1  # outputs depend on the input
    assert backend.translate_batch(["", " \n"], portuguese) == ["", ""]
    assert backend.translate_batch([], portuguese) == []


def test_smaller_batch_size_splits_and_is_deterministic(model_dir, backend):
    from actors.engines.mt_ctranslate2 import CTranslate2Backend

    portuguese = LANGUAGES["pt"]
    expected = backend.translate_batch(TEXTS, portuguese)
    assert backend.translate_batch(TEXTS, portuguese) == expected  # beam search: no sampling
    small = CTranslate2Backend(str(model_dir), convention="marian", batch_size=2, max_decoding_length=24)
    try:
        assert small.translate_batch(TEXTS, portuguese) == expected
    finally:
        small.close()
    with pytest.raises(RuntimeError, match="closed"):
        small.translate_batch(TEXTS, portuguese)


def test_languages_under_the_marian_convention(backend):
    # A single-pair model takes no target token, so any language "is supported": the caller picks the model.
    assert target_codes(LANGUAGES["pt"], "marian")[0] == ""
    assert backend.supports(LANGUAGES["pt"]) and backend.supports(LANGUAGES["te"])


def test_multi_target_convention_uses_the_labels_the_vocabulary_has(model_dir, backend):
    from actors.engines.mt_ctranslate2 import CTranslate2Backend

    multi = CTranslate2Backend(str(model_dir), convention="marian-multi", max_decoding_length=24)
    try:
        assert multi.supports(LANGUAGES["pt"])
        outputs = multi.translate_batch(TEXTS, LANGUAGES["pt"])
        assert len(outputs) == len(TEXTS) and outputs[2] == "" and all(isinstance(out, str) for out in outputs)
        assert ">>por<<" not in " ".join(outputs)
        # No >>zho<< (nor >>cmn_Hans<<...) token: split into pieces it would be noise, not a target.
        assert not multi.supports(LANGUAGES["zh"])
        with pytest.raises(ValueError, match=">>zho<<"):
            multi.translate_batch(["The cat sleeps."], LANGUAGES["zh"])
    finally:
        multi.close()


def test_unknown_convention_is_refused(model_dir):
    from actors.engines.mt_ctranslate2 import CTranslate2Backend

    with pytest.raises(ValueError, match="nllb"):
        CTranslate2Backend(str(model_dir), convention="opus")


def test_the_job_s_machine_translator_restores_every_span_around_the_model_s_output(model_dir):
    """mt.backend ctranslate2 as a run configures it (actors.engines.machine_translation), drafting a row
    through the row machine's own cutting: whatever the random model writes, every protected span
    comes back byte-exact, because none of them ever reached it."""
    import asyncio

    from actors.engines.machine_translation import build_machine_translator
    from engine.config import parse_config
    from engine.languages import get_language
    from engine.text.spans import SENTINEL_RE, protect_many, restore, translate_fields

    config = parse_config(
        {
            "seeds": {"paths": ["unused.jsonl"]},
            "languages": {"targets": ["pt"]},
            "translators": {"pt": "mt"},
            "mt": {"backend": "ctranslate2", "model": str(model_dir), "codes": "marian", "batch_size": 4},
        }
    )
    machine = build_machine_translator(config)
    assert machine.model_name == f"ctranslate2:{model_dir.name}" and machine.backend == "ctranslate2"
    sources = [
        "Run `ls -la` in the folder.\n```\nprint('hi')\n```",
        "See https://example.org/a_(b) and {name}. Then $x^2$.",
    ]
    protected, spans, _ = protect_many(sources)

    async def draft():
        return await translate_fields(
            dict(zip(("instruction", "output"), protected)), lambda units: machine.translate(units, get_language("pt"))
        )

    fields, _ = asyncio.run(draft())
    assert machine.batches >= 1 and machine.texts >= 4
    for key, text in fields.items():
        expected = {int(n) for n in SENTINEL_RE.findall(dict(zip(("instruction", "output"), protected))[key])}
        restored, why = restore(text, spans, expected)
        assert why is None, (key, text)
        for n in expected:
            assert spans[n - 1] in restored
    machine.shutdown()
