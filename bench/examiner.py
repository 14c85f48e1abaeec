"""The cost of examining a message in an examiner process instead of the worker's own thread.

    .venv/bin/python bench/examiner.py            # 5 repeats of 200 messages each way
    .venv/bin/python bench/examiner.py --quick    # 3 repeats

The messages are the pipeline's mix (``bench/pipeline.py``), against a desk of 10,000 customers
on SQLite (``bench/parse.py``'s ``classifying_desk``). Each repeat examines them, one after
another, (i) inline (``workflow.examine.Examination.examine`` in this thread, as with
``pipeline.examiners = 0``) and (ii) through an :class:`~workflow.examiner.ExaminerPool` of
one examiner (what ``process_message`` does). For (ii) the CPU of this process (the worker's
side: pickling, the pipe, the wake-ups) and of the examiner are measured apart; the hop is
their sum less the CPU of (i). Figures are medians over the repeats, per message.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import median  # noqa: E402


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of process *pid* (Linux)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(quick: bool = False) -> dict[str, Any]:
    from abuse_desk.workflow.examiner import ExaminerPool

    from bench.parse import classifying_desk
    from bench.pipeline import mixed_reports

    repeats = 3 if quick else 5
    messages = [raw for _, raw in mixed_reports(200)]
    with tempfile.TemporaryDirectory(prefix="bench-examiner-") as tmp:
        desk = classifying_desk(Path(tmp))
        now = desk.clock()
        pool = ExaminerPool(desk.config, desk.clock, 1).start()
        try:
            with pool.reserve() as slot:  # started, its index loaded
                slot.examine(messages[0], now, now)
            (pid,) = pool.pids()
            inline_cpu, inline_wall, parent_cpu, child_cpu, hop_wall = [], [], [], [], []
            for raw in messages:  # warm up both ways
                desk.examination.examine(raw, now)
            for _ in range(repeats):
                cpu, wall = time.process_time(), time.perf_counter()
                for raw in messages:
                    desk.examination.examine(raw, now)
                inline_cpu.append((time.process_time() - cpu) / len(messages))
                inline_wall.append((time.perf_counter() - wall) / len(messages))

                cpu, child, wall = time.process_time(), _cpu_of(pid), time.perf_counter()
                for raw in messages:
                    with pool.reserve() as slot:
                        slot.examine(raw, now, now)
                hop_wall.append((time.perf_counter() - wall) / len(messages))
                parent_cpu.append((time.process_time() - cpu) / len(messages))
                child_cpu.append((_cpu_of(pid) - child) / len(messages))
                assert pool.pids() == [pid], "the examiner was replaced: figures are void"
        finally:
            pool.close()
            desk.close()
    figures = {
        "messages": len(messages), "repeats": repeats,
        "inline_cpu_ms": median(inline_cpu) * 1e3, "inline_wall_ms": median(inline_wall) * 1e3,
        "pool_worker_cpu_ms": median(parent_cpu) * 1e3,
        "pool_examiner_cpu_ms": median(child_cpu) * 1e3,
        "pool_wall_ms": median(hop_wall) * 1e3,
    }
    figures["hop_cpu_ms"] = (figures["pool_worker_cpu_ms"] + figures["pool_examiner_cpu_ms"]
                             - figures["inline_cpu_ms"])
    return figures


def main() -> None:
    figures = run(quick="--quick" in sys.argv)
    print(f"{figures['messages']} messages of the pipeline's mix, median of "
          f"{figures['repeats']} repeats, per message:")
    print(f"  inline (examiners = 0):      {figures['inline_cpu_ms']:.3f} ms CPU, "
          f"{figures['inline_wall_ms']:.3f} ms wall")
    print(f"  in an examiner:              {figures['pool_worker_cpu_ms']:.3f} ms CPU in the "
          f"worker + {figures['pool_examiner_cpu_ms']:.3f} ms in the examiner, "
          f"{figures['pool_wall_ms']:.3f} ms wall")
    print(f"  the hop (CPU, both sides):   {figures['hop_cpu_ms']:.3f} ms")


if __name__ == "__main__":
    main()
