"""What the row state machine (engine/rows/refine.py) keeps of one row's drafts: the ledger of
what it spent and why its drafts failed, a valid draft, the conversation a retry sends, and the
thread its checks run on.

A draft is generated, checked, and on failure retried with the failure as feedback, up to a
number of attempts. Token use is booked per phase (draft, judge, rewrite, round_trip) so the
report can show what refinement and the round-trip check cost.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache

from engine.protocols import Completion


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


def retry_messages(messages: list[dict], reply: str, feedback: dict) -> list[dict]:
    """The conversation a retry sends: the failed reply as the assistant's turn, then the feedback
    on it (a new list; `messages` is left as it was)."""
    return messages + [{"role": "assistant", "content": reply}, feedback]
