"""Kill an engine's helper processes when the actor that owns them dies.

vLLM runs its engine core in child processes. When Ray kills an actor abruptly (SIGKILL, a dead
node manager), those children are orphaned and keep their memory. A tiny watcher process, in a
session of its own so it outlives the actor, kills them once the owner is gone, and exits by
itself when they end first.
"""

from __future__ import annotations

import os
import subprocess
import sys

_WATCH = """
import os, signal, sys, time
owner, children = int(sys.argv[1]), [int(p) for p in sys.argv[2:]]
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
while alive(owner) and any(alive(p) for p in children):
    time.sleep(1.0)
for pid in children:
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
"""


def child_pids() -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process().children(recursive=True)]


def watch_children(owner: int | None = None) -> subprocess.Popen | None:
    """Start the watcher for every current child of this process; None when there are none."""
    children = child_pids()
    if not children:
        return None
    return subprocess.Popen(
        [sys.executable, "-c", _WATCH, str(owner or os.getpid()), *map(str, children)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
