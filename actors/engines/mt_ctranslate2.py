"""Machine translation with CTranslate2: English segments into a target language with any converted
Marian (OPUS-MT), NLLB-200 or M2M-100 model, batched, on CPU or GPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

from engine.languages import Language
from engine.mt_codes import CONVENTIONS, TOKENIZER_SRC_LANG, target_codes

log = logging.getLogger(__name__)

_PREFIXED = ("nllb", "m2m100")  # conventions whose target language is the decoder's first token
_CT2_MAX_INPUT = 1024  # CTranslate2's own truncation length, for tokenizers that state no limit


class CTranslate2Backend:
    """A CTranslate2 model folder plus its Hugging Face tokenizer, translating batches of segments."""

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        convention: str = "nllb",
        device: str = "cpu",
        compute_type: str = "default",
        threads: int = 1,
        batch_size: int = 32,
        beam_size: int = 2,
        max_decoding_length: int = 512,
    ):
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown MT convention {convention!r}; known: {', '.join(CONVENTIONS)}")
        import ctranslate2
        from transformers import AutoTokenizer

        self.name = f"ctranslate2:{Path(model).name}"
        self.convention = convention
        self.batch_size = batch_size
        self.beam_size = beam_size
        self._tokenizer = AutoTokenizer.from_pretrained(tokenizer or model)
        if convention in TOKENIZER_SRC_LANG and hasattr(self._tokenizer, "src_lang"):
            # NLLB and M2M-100 tokenizers put the source-language token in; it must say English.
            self._tokenizer.src_lang = TOKENIZER_SRC_LANG[convention]
        # Marian's position table ends at 512: a longer input fails its whole batch in CTranslate2
        # ("no position encodings"), so inputs are cut at the tokenizer's stated limit instead.
        limit = self._tokenizer.model_max_length
        self.max_input_length = limit if 0 < limit < 1_000_000 else _CT2_MAX_INPUT
        # the decoder's positions end there too
        self.max_decoding_length = min(max_decoding_length, self.max_input_length)
        self._vocab = frozenset(self._tokenizer.get_vocab())
        self._special = frozenset(self._tokenizer.all_special_tokens)
        self._translator = ctranslate2.Translator(
            model, device=device, compute_type=compute_type, intra_threads=threads
        )

    def __repr__(self) -> str:
        return f"CTranslate2Backend({self.name!r}, convention={self.convention!r})"

    def _code(self, language: Language) -> str:
        """The target token this model knows for the language ("" for single-pair Marian)."""
        codes = target_codes(language, self.convention)
        for code in codes:
            # A token missing from the vocabulary would be split into pieces: untranslated noise.
            if not code or code in self._vocab:
                return code
        raise ValueError(
            f"model {self.name} has none of the target tokens {', '.join(codes)} for "
            f"language {language.code!r} ({language.name}) under the {self.convention!r} convention"
        )

    def supports(self, language: Language) -> bool:
        """Whether this model can be told to translate into the language."""
        try:
            self._code(language)
        except ValueError:
            return False
        return True

    def _source_tokens(self, text: str, code: str) -> list[str]:
        tokens = self._tokenizer.convert_ids_to_tokens(self._tokenizer.encode(text))
        return [code, *tokens] if self.convention == "marian-multi" else tokens

    def translate_batch(self, texts: list[str], language: Language) -> list[str]:
        """One translation per text, in order; blank texts give "" without reaching the model."""
        if self._translator is None:
            raise RuntimeError(f"{self.name} is closed")
        code = self._code(language)
        outputs = [""] * len(texts)
        todo = [i for i, text in enumerate(texts) if text.strip()]
        if not todo:
            return outputs
        sources = [self._source_tokens(texts[i], code) for i in todo]
        too_long = sum(len(tokens) > self.max_input_length for tokens in sources)
        if too_long:
            log.warning(
                "%s: %d of %d inputs exceed %d tokens and are truncated",
                self.name,
                too_long,
                len(sources),
                self.max_input_length,
            )
        prefix = [[code]] * len(todo) if self.convention in _PREFIXED else None
        results = self._translator.translate_batch(
            sources,
            target_prefix=prefix,
            beam_size=self.beam_size,
            max_batch_size=self.batch_size,
            max_input_length=self.max_input_length,
            max_decoding_length=self.max_decoding_length,
        )
        skip = 1 if prefix else 0  # CTranslate2 returns the prefix as part of the hypothesis
        for i, result in zip(todo, results):
            tokens = [token for token in result.hypotheses[0][skip:] if token not in self._special]
            outputs[i] = self._tokenizer.convert_tokens_to_string(tokens).strip()
        return outputs

    def close(self) -> None:
        """Free the model's memory (host or GPU); the backend cannot translate afterwards."""
        if self._translator is not None:
            self._translator.unload_model()
            self._translator = None
