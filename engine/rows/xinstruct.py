"""X-Instruction's generation mode: an English instruction for a target-language text.

    language ID of the text ─▶ write instruction ─▶ validate ─▶ judge good / medium / bad
                                       ▲                                   │
                                       └──── rewrite with feedback ◀── medium (k rounds)

The text itself is the response and is never changed; the model only writes the instruction
(back-translation of intent), so the output is a cross-lingual pair.
"""

from __future__ import annotations

import json
from dataclasses import replace

from engine.text.checks import check_degeneration, check_empty, check_language, check_script
from engine.config import Config
from engine.rows.drafting import Draft, Ledger, draft_until_valid
from engine.protocols import GenParams, Generator, LanguageIdentifier
from engine.rows.judge import LABELS, label_schema, parse_label
from engine.languages import Language, get_language
from engine.text.parse import parse_fields
from engine.rows.prompts import answer_schema, load_template
from engine.records import ACCEPTED, REJECTED

XINSTRUCT_VERSION = "xinstruct.v1"
XJUDGE_VERSION = "xjudge.v1"
INSTRUCTION_CHARS = (10, 400)  # X-Instruction's instructions are about 100 characters


def directive(language: Language) -> str:
    return f"Answer in {language.name}."


def text_language_reason(text: str, language: Language, langid: LanguageIdentifier, threshold: float) -> tuple[str | None, str, float, str]:
    """Does the text really read as its claimed language? (reason, label, confidence, method)."""
    if language.lid_label and langid.has_label(language.lid_label):
        label, confidence = langid.predict(text)
        return check_language(label, confidence, language.lid_label, threshold), label, confidence, "fasttext"
    reason = check_script(text, language.script)
    return reason, language.code, 1.0 if reason is None else 0.0, "script"


class InstructionWriter:
    """Reads a task row whose src_output is a target-language text; returns a full output row."""

    def __init__(self, config: Config, generator: Generator, langid: LanguageIdentifier):
        self.config, self.generator, self.langid = config, generator, langid
        gen = config.generation
        structured = config.model.structured_output
        self.params = GenParams(gen.temperature, gen.top_p, min(gen.max_tokens, 160), gen.repetition_penalty,
                                answer_schema(["instruction"]) if structured else None)
        self.judge_params = GenParams(0.0, 1.0, 128, 1.0, label_schema() if structured else None)
        self.prompt_version = XINSTRUCT_VERSION if config.refine.rounds == 0 else f"{XINSTRUCT_VERSION}+{XJUDGE_VERSION}"

    async def __call__(self, task: dict) -> dict:
        language = get_language(task["lang"])
        text = task["src_output"] or ""
        row = {**task, "model": self.config.model.name, "backend": self.generator.backend, "prompt_version": self.prompt_version}
        threshold = self.config.validation.langid_threshold
        reason, label, confidence, method = text_language_reason(text, language, self.langid, threshold)
        row.update(lid_label=label, lid_confidence=confidence, lid_method=method, output=text)
        if reason is not None:
            return {**row, **Ledger().columns(), "status": REJECTED, "reason": reason}  # before any LLM call

        messages = [
            {"role": "system", "content": load_template(XINSTRUCT_VERSION).format(language=language.name)},
            {"role": "user", "content": text},
        ]
        ledger = Ledger()
        attempts = self.config.validation.max_attempts

        def feedback(reason: str, _field: str | None) -> dict:
            return {"role": "user", "content": f"That was rejected ({reason}). Write one English instruction as a JSON object with the key \"instruction\"."}

        current = await draft_until_valid(self.generator, messages, self.params, self._check, feedback, attempts, ledger, "draft")
        if current is None:
            return {**row, **ledger.columns(), "status": REJECTED, "reason": ledger.reasons[-1]}
        if self.config.refine.rounds == 0:
            return {**row, **self._pair(current, language), **ledger.columns(), "status": ACCEPTED, "reason": None}

        scores, round_no, best = [], 0, (-1.0, current)
        while True:
            verdict, note = await self._judge(current, text, language, ledger)
            scores.append({"round": round_no, "criterion": "pair_quality", "score": LABELS.get(verdict)})
            value = LABELS.get(verdict, -1.0)
            best = max(best, (value, current), key=lambda item: item[0])
            if verdict in ("good", "bad") or round_no == self.config.refine.rounds:
                break
            rewrite = messages + [
                {"role": "assistant", "content": current.text},
                {"role": "user", "content": f"A reviewer says the instruction does not fit the text well: {note or 'make it fit the text'}. Write a better English instruction, as the same JSON object."},
            ]
            rewritten = await draft_until_valid(self.generator, rewrite, self.params, self._check, feedback, attempts, ledger, "rewrite")
            round_no += 1
            if rewritten is None:
                break
            current = rewritten
        done = {**row, **self._pair(best[1], language), **ledger.columns(), "scores": scores, "rounds": round_no}
        label_kept = {v: k for k, v in LABELS.items()}.get(best[0])
        if label_kept is None:
            return {**done, "status": REJECTED, "reason": "judge_unparsed"}
        if label_kept == "bad" or (label_kept == "medium" and not self.config.refine.accept_medium):
            return {**done, "status": REJECTED, "reason": f"judge_{label_kept}"}
        return {**done, "status": ACCEPTED, "reason": None}

    def _pair(self, draft: Draft, language: Language) -> dict:
        return {"instruction": f"{draft.output['instruction']} {directive(language)}", "input": ""}

    def _check(self, text: str) -> tuple[str | None, str | None, dict]:
        fields, reason = parse_fields(text, ["instruction"])
        if fields is None:
            return reason, None, {}
        instruction = " ".join(fields["instruction"].split())
        low, high = INSTRUCTION_CHARS
        reason = check_empty(instruction) or check_degeneration(instruction)
        if reason is None and not low <= len(instruction) <= high:
            reason = f"instruction_length:{len(instruction)}"
        if reason is None:
            label, confidence = self.langid.predict(instruction)
            reason = check_language(label, confidence, "en", self.config.validation.langid_threshold)
        return reason, "instruction", {"instruction": instruction}

    async def _judge(self, draft: Draft, text: str, language: Language, ledger: Ledger) -> tuple[str | None, str]:
        pair = json.dumps({"instruction": draft.output["instruction"], "response": text}, ensure_ascii=False, indent=1)
        messages = [
            {"role": "system", "content": load_template(XJUDGE_VERSION).format(language=language.name)},
            {"role": "user", "content": pair},
        ]
        completion = await self.generator.generate(messages, self.judge_params)
        ledger.book("judge", completion)
        label, note, _problem = parse_label(completion.text if completion.finish_reason in ("stop", "length") else None)
        return label, note
