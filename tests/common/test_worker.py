"""A Worker's stop ends its body's sleep at once and cancels the call it
follows, even one opened while the stop was coming."""

from __future__ import annotations

import threading
import time

from services.common.worker import Worker


class Call:
    """Stands in for a streaming call: reading blocks until it is cancelled."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def cancel(self) -> bool:
        self.cancelled.set()
        return True

    def read(self) -> None:
        self.cancelled.wait(30)


def test_stop_ends_a_sleep_at_once():
    woke: list[bool] = []
    worker = Worker("sleeper", lambda: woke.append(worker.stopping.wait(30)))
    worker.start()
    started = time.monotonic()
    worker.stop()
    assert time.monotonic() - started < 5
    assert woke == [True] and not worker.is_alive()


def test_stop_cancels_the_call_being_read():
    call = Call()
    reading = threading.Event()

    def body() -> None:
        worker.follow(call)
        reading.set()
        call.read()

    worker = Worker("reader", body)
    worker.start()
    assert reading.wait(10)
    worker.stop()
    assert call.cancelled.is_set() and not worker.is_alive()


def test_a_call_followed_after_the_stop_is_cancelled_at_once():
    worker = Worker("late", lambda: None)
    worker.stop()  # never started: nothing to wait for
    call = worker.follow(Call())
    assert call.cancelled.is_set()
