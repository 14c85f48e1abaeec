"""Parsers that misbehave on purpose, for the isolation tests (``tests/test_isolation.py``).

They are loaded where messages are examined through ``parsers.plugins``
(``tests.isolation_plugins:gil_holder`` ...) and act only on a message whose Subject carries
their marker; every other message goes on to the built-in parsers.
"""

from __future__ import annotations

import ctypes
import os
import signal

from abuse_desk.core.mail import Mail
from abuse_desk.parsers.base import ParseResult, Stage

# Seconds the GIL holder keeps the GIL: far past any budget the tests set.
HOLD_S = 60


class _OnMarker:
    name = "test"
    stage = Stage.GUARD
    marker = ""

    def matches(self, mail: Mail) -> bool:
        return self.marker in mail.subject

    def parse(self, mail: Mail) -> ParseResult:  # pragma: no cover - overridden
        raise NotImplementedError


class GilHolder(_OnMarker):
    """A parse that holds the GIL, as a catastrophic regular expression does: C code called
    with the GIL held (ctypes.PyDLL does not release it), so no other thread of the process
    runs meanwhile."""

    name = "test-gil-holder"
    marker = "hold-the-gil"

    def parse(self, mail: Mail) -> ParseResult:
        ctypes.PyDLL(None).sleep(HOLD_S)
        raise AssertionError("the GIL holder was not stopped")


class MemoryEater(_OnMarker):
    """A parse that allocates 8 MiB at a time, up to 768 MiB, touching every page."""

    name = "test-memory-eater"
    marker = "eat-memory"

    def parse(self, mail: Mail) -> ParseResult:
        held = [bytearray(b"x" * (8 << 20)) for _ in range(96)]
        raise AssertionError(f"the memory eater got {len(held) * 8} MiB")


class Crasher(_OnMarker):
    """A parse whose process is killed from outside, as the kernel's OOM killer does."""

    name = "test-crasher"
    marker = "crash-the-examiner"

    def parse(self, mail: Mail) -> ParseResult:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("still alive")


def gil_holder() -> GilHolder:
    return GilHolder()


def memory_eater() -> MemoryEater:
    return MemoryEater()


def crasher() -> Crasher:
    return Crasher()


ALL = ["tests.isolation_plugins:gil_holder", "tests.isolation_plugins:memory_eater",
       "tests.isolation_plugins:crasher"]
