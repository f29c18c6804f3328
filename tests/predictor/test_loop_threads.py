"""The learning loop's two threads on their own: a step that raises is
logged and the thread goes on, and stop() ends both."""

from __future__ import annotations

import threading

from services.predictor.loop import LoopThreads


class FlakyLoop:
    """Stands in for Loop: each step raises on its first call, then counts."""

    def __init__(self) -> None:
        self.worked = 0
        self.ticked = 0
        self.worked_twice = threading.Event()
        self.ticked_twice = threading.Event()
        self.work_threads: set[str] = set()

    def process_pending(self, block_s: float = 0.0) -> int:
        self.work_threads.add(threading.current_thread().name)
        self.worked += 1
        if self.worked == 1:
            raise RuntimeError("a bad batch")
        if self.worked >= 3:
            self.worked_twice.set()
        threading.Event().wait(min(block_s, 0.01))
        return 0

    def tick(self) -> None:
        self.ticked += 1
        if self.ticked == 1:
            raise ValueError("a bad tick")
        if self.ticked >= 3:
            self.ticked_twice.set()


def test_each_thread_outlives_a_step_that_raises_and_stops_when_told():
    loop = FlakyLoop()
    threads = LoopThreads(loop, interval_s=0.001)  # type: ignore[arg-type]
    threads.start()
    try:
        assert loop.worked_twice.wait(10.0), f"worker stopped after {loop.worked} steps"
        assert loop.ticked_twice.wait(10.0), f"tick stopped after {loop.ticked} ticks"
    finally:
        threads.stop()
    assert loop.work_threads == {"loop-worker"}
    assert not any(w.is_alive() for w in threads.workers)
    # Nothing runs once stopped.
    worked, ticked = loop.worked, loop.ticked
    threading.Event().wait(0.05)
    assert (loop.worked, loop.ticked) == (worked, ticked)
