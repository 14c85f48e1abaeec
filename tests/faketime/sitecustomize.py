"""Loaded by ``make test-at`` (PYTHONPATH=tests/faketime) into every Python process it starts.

libfaketime 0.9.10 (Debian 12's) answers ``clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME)``
with EINVAL when the monotonic clock is left real (FAKETIME_DONT_FAKE_MONOTONIC=1), and that
call is how Python 3.11's ``time.sleep`` waits: every sleep would raise ``OSError: [Errno 22]``.
Waits on conditions, queues, select and asyncio are unaffected. Under libfaketime only, this
replaces ``time.sleep`` with a ``select`` wait of the same length on the real monotonic clock.
"""

from __future__ import annotations

import os

if "faketime" in os.environ.get("LD_PRELOAD", ""):
    import select
    import time

    _monotonic = time.monotonic

    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        end = _monotonic() + seconds
        while True:
            left = end - _monotonic()
            if left <= 0:
                return
            select.select([], [], [], left)

    time.sleep = _sleep
