"""Load generators that run in a separate worker process, so the client's
Python never shares a GIL with the server it measures. Requests travel as
serialized bytes and answers are not parsed: the same work for a baseline
and the figure beside it."""

from __future__ import annotations

import collections
import functools
import itertools
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import grpc

# (name, target address, full method path, serialized request)
Job = tuple[str, str, str, bytes]
F = TypeVar("F", bound=Callable[..., Any])


def plain_errors(fn: F) -> F:
    """An RpcError holds locks and cannot travel back from the worker
    process; its code and details can."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as exc:
            raise RuntimeError(f"{fn.__name__}: {exc.code()}: {exc.details()}") from None

    return cast(F, wrapper)


def _channel(target: str) -> grpc.Channel:
    channel = grpc.insecure_channel(target, options=[("grpc.max_receive_message_length", 64 << 20)])
    grpc.channel_ready_future(channel).result(timeout=30)
    return channel


def _calls(jobs: list[Job]) -> tuple[list[grpc.Channel], dict[str, tuple[grpc.UnaryUnaryMultiCallable, bytes]]]:
    channels = {target: _channel(target) for _, target, _, _ in jobs}
    calls = {name: (channels[target].unary_unary(method), request) for name, target, method, request in jobs}
    return list(channels.values()), calls


@plain_errors
def latencies(jobs: list[Job], rounds: int, calls: int) -> dict[str, list[float]]:
    """Sequential calls, alternating between the jobs in blocks of `calls`
    for `rounds` rounds, so drift on the machine hits every job alike.
    Returns each call's seconds per job name (a warm-up block is dropped)."""
    channels, stubs = _calls(jobs)
    out: dict[str, list[float]] = {name: [] for name in stubs}
    for r in range(rounds + 1):
        for name, (call, request) in stubs.items():
            block = out[name]
            for _ in range(calls if r else max(calls // 5, 1)):
                started = time.perf_counter()
                call(request)
                if r:
                    block.append(time.perf_counter() - started)
    for channel in channels:
        channel.close()
    return out


@plain_errors
def throughput(jobs: list[Job], rounds: int, seconds: float, in_flight: int) -> dict[str, list[float]]:
    """Calls per second with `in_flight` calls outstanding, each job for
    `seconds` per round, alternating; one rate per round per job."""
    channels, stubs = _calls(jobs)
    out: dict[str, list[float]] = {name: [] for name in stubs}
    for r in range(rounds + 1):
        for name, (call, request) in stubs.items():
            done = _closed_loop(call, request, seconds if r else seconds / 4, in_flight)
            if r:
                out[name].append(done)
    for channel in channels:
        channel.close()
    return out


def _closed_loop(call: grpc.UnaryUnaryMultiCallable, request: bytes, seconds: float, in_flight: int) -> float:
    pending: collections.deque[grpc.Future] = collections.deque(call.future(request) for _ in range(in_flight))
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        pending.popleft().result()
        done += 1
        pending.append(call.future(request))
    elapsed = time.perf_counter() - started
    for future in pending:
        future.result()
    return done / elapsed


@plain_errors
def rate_over(target: str, method: str, requests: list[bytes], seconds: float, in_flight: int) -> float:
    """Requests per second, cycling through `requests` with `in_flight`
    outstanding, for `seconds` (after a short warm-up)."""
    with _channel(target) as channel:
        call = channel.unary_unary(method)
        queue = itertools.cycle(requests)
        pending: collections.deque[grpc.Future] = collections.deque()
        for r in range(2):
            for _ in range(in_flight):
                pending.append(call.future(next(queue)))
            done = 0
            started = time.perf_counter()
            deadline = started + (seconds if r else seconds / 4)
            while time.perf_counter() < deadline:
                pending.popleft().result()
                done += 1
                pending.append(call.future(next(queue)))
            elapsed = time.perf_counter() - started
            while pending:
                pending.popleft().result()
        return done / elapsed


@plain_errors
def stream(target: str, method: str, messages: list[bytes]) -> float:
    """Sends every message on one client stream; messages per second until
    the server's answer."""
    with _channel(target) as channel:
        call = channel.stream_unary(method)
        started = time.perf_counter()
        call(iter(messages))
        return len(messages) / (time.perf_counter() - started)


def timed_calls(target: str, method: str, request: bytes, seconds: float) -> list[tuple[float, float, bool]]:
    """Sequential calls for `seconds`: (start, end, succeeded) each, on the
    monotonic clock the whole machine shares."""
    with _channel(target) as channel:
        call = channel.unary_unary(method)
        out = []
        deadline = time.monotonic() + seconds
        while (started := time.monotonic()) < deadline:
            try:
                call(request, timeout=10)
                ok = True
            except grpc.RpcError:
                ok = False
            out.append((started, time.monotonic(), ok))
        return out
