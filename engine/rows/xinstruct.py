"""X-Instruction's generation mode: the recipe that writes an English instruction for a
target-language text.

    language ID of the text ─▶ write instruction ─▶ validate ─▶ judge good / medium / bad
                                       ▲                                   │
                                       └──── rewrite with feedback ◀── medium (k rounds)

The text itself is the response and is never changed; the model only writes the instruction
(back-translation of intent), so the output is a cross-lingual pair. The loop is
engine/rows/refine.py; this file holds X-Instruction's prompts, checks and judge rubric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from engine.config import Config
from engine.languages import get_language
from engine.protocols import CheckResult, GenParams, LanguageIdentifier
from engine.reasons import make_reason
from engine.rows.judge import LABELS, judge_params, label_schema, parse_label
from engine.rows.prompts import answer_schema, load_template, with_directive
from engine.rows.refine import Draft, Judgement, Request
from engine.text.checks import check_degeneration, check_empty, check_language, language_check
from engine.text.spans import parse_fields

XINSTRUCT_VERSION = "xinstruct.v1"
XJUDGE_VERSION = "xjudge.v1"
XFEEDBACK_VERSION = "xfeedback.v1"  # after a failed draft
XREWRITE_VERSION = "xrewrite.v1"  # after a "medium" judgement
INSTRUCTION_CHARS = (10, 400)  # X-Instruction's instructions are about 100 characters
LABEL_OF = {value: label for label, value in LABELS.items()}


@dataclass(frozen=True)
class InstructionFacts:
    """What the check and the judge need of one X-Instruction request."""

    text: str  # the target-language text the instruction must fit (the pair's response)


class InstructionRecipe:
    """Prompts, checks and judge rubric of X-Instruction (see engine.rows.refine.Recipe)."""

    draft_version = XINSTRUCT_VERSION
    judge_version = XJUDGE_VERSION

    def __init__(self, config: Config, langid: LanguageIdentifier):
        self.config, self.langid = config, langid
        gen = config.generation
        structured = config.model.structured_output
        self.params = GenParams(
            gen.temperature,
            gen.top_p,
            min(gen.max_tokens, 160),
            gen.repetition_penalty,
            answer_schema(["instruction"]) if structured else None,
        )
        self.judge_params = judge_params(label_schema, structured)

    def screen(self, task: dict) -> CheckResult:
        """Does the text really read as its claimed language? Checked before any model call."""
        text = task["src_output"] or ""
        reason, label, confidence, method = language_check(
            text, get_language(task["lang"]), self.langid, self.config.validation
        )
        return CheckResult(
            reason, "output", {"lid_label": label, "lid_confidence": confidence, "lid_method": method, "output": text}
        )

    def prepare(self, task: dict, count_tokens=None) -> Request:
        language = get_language(task["lang"])
        messages = [
            {"role": "system", "content": load_template(XINSTRUCT_VERSION).format(language=language.name)},
            {"role": "user", "content": task["src_output"] or ""},
        ]
        return Request(task, language, messages, self.params, InstructionFacts(task["src_output"] or ""))

    def check(self, request: Request[InstructionFacts], text: str) -> CheckResult:
        fields, reason = parse_fields(text, ["instruction"])
        if fields is None:
            return CheckResult(reason, None, {})
        instruction = " ".join(fields["instruction"].split())
        low, high = INSTRUCTION_CHARS
        reason = check_empty(instruction) or check_degeneration(instruction)
        if reason is None and not low <= len(instruction) <= high:
            reason = make_reason("instruction_length", len(instruction))
        if reason is None:
            label, confidence = self.langid.predict(instruction)
            reason = check_language(label, confidence, "en", self.config.validation.langid_threshold)
        return CheckResult(reason, "instruction" if reason is not None else None, {"instruction": instruction})

    def checked_fields(self, request: Request[InstructionFacts], output: dict) -> tuple[dict[str, str], dict[str, str]]:
        """The text as the source, the English instruction as the draft."""
        return {"output": request.facts.text}, {"instruction": output["instruction"]}

    def feedback(self, request: Request, reason: str, failed_field: str | None) -> dict:
        return {"role": "user", "content": load_template(XFEEDBACK_VERSION).format(reason=reason)}

    def judge_messages(self, request: Request[InstructionFacts], draft: Draft) -> list[list[dict]]:
        pair = json.dumps(
            {"instruction": draft.output["instruction"], "response": request.facts.text}, ensure_ascii=False, indent=1
        )
        system = load_template(XJUDGE_VERSION).format(language=request.language.name)
        return [[{"role": "system", "content": system}, {"role": "user", "content": pair}]]

    def read_judgement(self, replies: list[str | None], round_no: int) -> Judgement:
        label, note, _problem = parse_label(replies[0])
        value = LABELS.get(label)
        scores = [{"round": round_no, "criterion": "pair_quality", "score": value}]
        return Judgement(value, scores, label in ("good", "bad"), note)

    def rewrite_message(self, request: Request, judgement: Judgement) -> dict:
        return {
            "role": "user",
            "content": load_template(XREWRITE_VERSION).format(note=judgement.notes or "make it fit the text"),
        }

    def reject_reason(self, value: float) -> str | None:
        label = LABEL_OF[value]
        if label == "bad":
            return make_reason("judge_bad")
        if label == "medium" and not self.config.refine.accept_medium:
            return make_reason("judge_medium")
        return None

    def output(self, request: Request, draft: Draft) -> dict:
        # The added checks' columns (the adequacy score) come along with the instruction.
        return {
            **draft.output,
            "instruction": with_directive(draft.output["instruction"], request.language.name),
            "input": "",
        }
