"""Drafting with retries, shared by every row state machine.

A draft is generated, checked, and on failure retried with the failure as feedback, up to a
number of attempts. Token use is booked per phase (draft, judge, rewrite, round_trip) so the
report can show what refinement and the round-trip check cost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache

from engine.protocols import ERROR, TOO_LONG, Completion, GenParams, Generator
from engine.reasons import make_reason, retry_makes_sense

# check(model text) → (reason or None, failing field or None, output columns)
Check = Callable[[str], tuple[str | None, str | None, dict]]
Feedback = Callable[[str, str | None], dict]


@cache
def checks_thread() -> ThreadPoolExecutor:
    """The one thread a process runs its drafts' checks on. A check can take a while (the
    adequacy gate encodes every field: 10-200 ms on one core); off the event loop, the other
    rows keep submitting requests meanwhile. One thread: checks run one at a time, as on the
    loop, so a check's model and counters need no locks."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="draft-checks")


@dataclass
class Ledger:
    """Everything a row spent and every reason a draft failed, in order."""

    prompt_tokens: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {"draft": 0, "judge": 0, "rewrite": 0, "round_trip": 0})
    attempts: int = 0  # draft and rewrite requests
    reasons: list[str] = field(default_factory=list)
    last_output: dict = field(default_factory=dict)  # the last readable draft, kept on rejected rows
    last_field: str | None = None  # the field the last reason is about (None: the whole reply)

    def book(self, phase: str, completion: Completion) -> None:
        self.prompt_tokens += completion.prompt_tokens
        self.tokens[phase] += completion.completion_tokens

    def fail(self, reason: str, failed_field: str | None = None, output: dict | None = None) -> None:
        self.reasons.append(reason)
        self.last_field = failed_field
        self.last_output = output or self.last_output

    def columns(self) -> dict:
        return {
            "attempts": self.attempts,
            "attempt_reasons": list(self.reasons),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": sum(self.tokens.values()),
            "tokens_draft": self.tokens["draft"],
            "tokens_judge": self.tokens["judge"],
            "tokens_rewrite": self.tokens["rewrite"],
            "tokens_round_trip": self.tokens["round_trip"],
        }


@dataclass(frozen=True)
class Draft:
    text: str  # the model's answer as written (sentinels and all): what a rewrite builds on
    output: dict  # restored fields plus validation columns
    author: str = "llm"  # who wrote it: "llm", or "mt" (a machine-translation draft)


async def draft_until_valid(
    generator: Generator,
    messages: list[dict],
    params: GenParams,
    check: Check,
    feedback: Feedback,
    max_attempts: int,
    ledger: Ledger,
    phase: str,
) -> Draft | None:
    """The first valid draft, or None when every attempt failed (reasons are in the ledger)."""
    for _ in range(max_attempts):
        completion = await generator.generate(messages, params)
        ledger.book(phase, completion)
        ledger.attempts += 1
        failed_field, output = None, {}
        if completion.finish_reason == TOO_LONG:
            reason = make_reason("too_long")  # not retried: a retry only makes the prompt longer
        elif completion.finish_reason == ERROR:
            reason = make_reason("generation_error", completion.text)[:200]
        else:
            reason, failed_field, output = await asyncio.get_running_loop().run_in_executor(checks_thread(), check, completion.text)
            if reason is None:
                return Draft(completion.text, output)
        ledger.fail(reason, failed_field, output)
        if not retry_makes_sense(reason):
            return None
        if completion.finish_reason != ERROR:  # a failed request is sent again as it was
            messages = retry_messages(messages, completion.text, feedback(reason, failed_field))
    return None


def retry_messages(messages: list[dict], reply: str, feedback: dict) -> list[dict]:
    """The conversation a retry sends: the failed reply as the assistant's turn, then the feedback
    on it (a new list; `messages` is left as it was)."""
    return messages + [{"role": "assistant", "content": reply}, feedback]
