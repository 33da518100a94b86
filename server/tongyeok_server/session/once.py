"""A function that does its work the first time it is called, from any thread, and nothing after."""

from __future__ import annotations

import threading
from collections.abc import Callable


def call_once(work: Callable[[], None]) -> Callable[[], None]:
    """``work`` behind a guard: the first call runs it, later ones (from any thread) do nothing.

    What ``hold()`` returns is one: a release called twice must count once.
    """
    lock = threading.Lock()
    done = False

    def run() -> None:
        nonlocal done
        with lock:
            if done:
                return
            done = True
        work()

    return run
