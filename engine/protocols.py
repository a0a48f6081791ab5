"""The small protocols the row state machines talk to; actors/ provides the real ones."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

# Completion.finish_reason values besides the engine's own ("stop", "length").
TOO_LONG = "too_long"  # the prompt plus max_tokens does not fit the model's context
ERROR = "error"  # the request failed (timeouts, HTTP errors after retries); text holds the cause


@dataclass(frozen=True)
class GenParams:
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    repetition_penalty: float = 1.0
    json_schema: dict | None = None  # constrain the answer to this schema, where the backend can


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class CheckResult(NamedTuple):
    """What a check says of a draft: `reason` (None: it passed), the `field` the reason is about
    (None: the whole reply), and `columns` for the row (scores, language-ID answers, the restored
    fields), kept whether or not it passed. A plain (reason, field, columns) tuple reads the same."""

    reason: str | None
    field: str | None
    columns: dict


def passed(columns: dict | None = None) -> CheckResult:
    """A check that found nothing wrong, with its columns."""
    return CheckResult(None, None, {} if columns is None else columns)


class ExtraCheck(Protocol):
    """A check added to a recipe's own (the adequacy gate, engine/text/adequacy.py): it sees a draft
    that passed every built-in check, as (source fields, draft fields, language: an
    engine.languages.Language). Translation passes the English source and the restored
    translation, field by field; X-Instruction passes {"output": the text} and {"instruction": the
    English instruction}. Its reasons go in engine/reasons.py."""

    def __call__(self, source: dict[str, str], drafted: dict[str, str], language) -> CheckResult: ...


class SeedTable(Protocol):
    """The seeds as the planner sees them: a pyarrow.Table read in this process, or the job's
    actors.dataflow.seeds.SeedView (the text in Ray's object store, small columns here)."""

    @property
    def num_rows(self) -> int: ...

    @property
    def column_names(self) -> list[str]: ...

    def column(self, name: str): ...

    def filter(self, mask) -> SeedTable: ...

    def append_column(self, name: str, values) -> SeedTable: ...

    def take(self, indices):
        """The rows at `indices`, with their text, as a pyarrow.Table."""
        ...


class Generator(Protocol):
    model_name: str
    backend: str

    async def generate(self, messages: list[dict], params: GenParams) -> Completion: ...

    def count_tokens(self, text: str) -> int:
        """Tokens of a text in the model's tokenizer (an estimate where none is available)."""
        ...


class MachineTranslator(Protocol):
    """A machine-translation model (actors/engines/machine_translation.py): English prose in, the target
    language out, one output per text in order. It is never shown a protected span."""

    model_name: str
    backend: str

    async def translate(self, texts: list[str], language) -> list[str]:
        """`texts` into `language` (an engine.languages.Language)."""
        ...


class LanguageIdentifier(Protocol):
    def has_label(self, label: str) -> bool: ...

    def predict(self, text: str) -> tuple[str, float]:
        """(bare label such as 'fr', confidence) for one text."""
        ...


@runtime_checkable
class SecondOpinionLanguageIdentifier(LanguageIdentifier, Protocol):
    """A language identifier with second models, asked only where the first rejected a field."""

    def second_opinions(self, text: str, expected: str, first: str) -> Iterator[tuple[str, float, str]]:
        """(bare label, confidence, method) for text from each second model, in order, that knows
        both `expected` and the first model's answer `first` (a model that could not have named the
        first model's language must not overrule it); `method` names the model, for a row's
        `lid_method`. Read lazily: the caller stops at the first answer it accepts."""
        ...


class TextEncoder(Protocol):
    """Texts → L2-normalised float32 vectors (a numpy (n, d) array) in one multilingual space.

    Asymmetric models (multilingual-e5: "query: " / "passage: ") embed the two sides differently;
    symmetric ones (LaBSE) treat both alike. The implementation applies its model's convention.
    """

    name: str

    def encode_queries(self, texts: list[str]): ...

    def encode_passages(self, texts: list[str]): ...
