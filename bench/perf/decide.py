"""Decide against the trivial echo on the same server, Decide as the table
grows, and the client library's local pick against Decide."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import grpc

from bench.perf import fixtures, load
from bench.perf.sizes import Sizes
from bench.perf.timing import TIMES, Row, mean_s, median, pct, rate, us
from services.common.serving import RunningServer
from services.router.client import RouterClient


@dataclass(frozen=True)
class DecideFigures:
    """What later benchmarks compare against."""

    p50_s: float
    calls_per_s: float


def run(sizes: Sizes, worker: Executor) -> tuple[list[Row], DecideFigures]:
    servers: dict[int, RunningServer] = {}
    metered: RunningServer | None = None
    try:
        for n in sizes.fleet_sizes:
            servers[n] = fixtures.router_with_echo(fixtures.table_of(n))
        metered = fixtures.router_with_echo(fixtures.table_of(sizes.fleet_sizes[0]), metrics=True)
        return _measure(sizes, worker, servers, metered)
    finally:
        fixtures.stop_all([*servers.values(), *([metered] if metered else [])])


def _measure(
    sizes: Sizes, worker: Executor, servers: dict[int, RunningServer], metered: RunningServer
) -> tuple[list[Row], DecideFigures]:
    small, *larger = sizes.fleet_sizes
    addr = {n: f"127.0.0.1:{s.port}" for n, s in servers.items()}
    request = fixtures.decide_request(sizes.candidates)
    jobs: list[load.Job] = [
        ("echo", addr[small], fixtures.ECHO_METHOD, request),
        (f"decide@{small}", addr[small], fixtures.DECIDE_METHOD, request),
        ("canned", addr[small], fixtures.CANNED_METHOD, request),
        ("echo+metrics", f"127.0.0.1:{metered.port}", fixtures.ECHO_METHOD, request),
        ("decide+metrics", f"127.0.0.1:{metered.port}", fixtures.DECIDE_METHOD, request),
    ]
    jobs += [(f"decide@{n}", addr[n], fixtures.DECIDE_METHOD, request) for n in larger]
    biggest = sizes.fleet_sizes[-1]
    whole = fixtures.decide_request(0)
    jobs.append(("whole", addr[biggest], fixtures.DECIDE_METHOD, whole))
    seq = worker.submit(load.latencies, jobs, sizes.latency_rounds, sizes.latency_calls).result()
    pair = [jobs[0], jobs[1]]
    tput = worker.submit(load.throughput, pair, sizes.throughput_rounds, sizes.throughput_s, sizes.in_flight).result()

    echo, decide = seq["echo"], seq[f"decide@{small}"]
    echo_rate, decide_rate = median(tput["echo"]), median(tput[f"decide@{small}"])
    picks_per_s = _local_picks(addr[small], sizes)
    what = f"{sizes.candidates} candidates named, {small} backends"
    metrics_on = seq["decide+metrics"]
    rows = [
        _ratio_row(f"`Decide` p50, sequential ({what})", pct(decide, 50), pct(echo, 50), "echo", 1.15),
        _ratio_row(
            "`Decide` p50 with metrics on (gRPC metrics interceptor, decision counter), as the router serves it; "
            "echo on the same server",
            pct(metrics_on, 50),
            pct(seq["echo+metrics"], 50),
            "echo",
            1.15,
        ),
        Row(
            "`Decide` p50, metrics on against off (same table, same run)",
            us(pct(metrics_on, 50)),
            f"metrics off {us(pct(decide, 50))}; echo {us(pct(seq['echo+metrics'], 50))} on, {us(pct(echo, 50))} off",
            f"{pct(metrics_on, 50) / pct(decide, 50):.2f} {TIMES} off",
            "—",
            None,
        ),
        Row(
            "`Decide` p50 against a typed method on the same server that parses a `DecideRequest` and answers a "
            "prebuilt `Decision` (gRPC's typed path, no decision)",
            us(pct(decide, 50)),
            f"typed {us(pct(seq['canned'], 50))}; echo {us(pct(echo, 50))}",
            f"{pct(decide, 50) / pct(seq['canned'], 50):.2f} {TIMES} typed",
            "—",
            None,
        ),
        _ratio_row("`Decide` p99, sequential", pct(decide, 99), pct(echo, 99), "echo", 1.15),
        Row(
            f"`Decide` throughput, {sizes.in_flight} calls in flight from one client process",
            rate(decide_rate, " calls/s"),
            f"echo {rate(echo_rate, ' calls/s')}",
            f"{decide_rate / echo_rate:.2f} {TIMES} echo",
            f"≥ 0.9 {TIMES} echo",
            decide_rate >= 0.9 * echo_rate,
        ),
        Row(
            "local pick through `RouterClient` (one thread)",
            rate(picks_per_s, " picks/s"),
            f"`Decide` {rate(decide_rate, ' calls/s')}",
            f"{picks_per_s / decide_rate:,.0f} {TIMES} `Decide`",
            f"≥ 100 {TIMES} `Decide`; ≥ 200,000 picks/s",
            picks_per_s >= 100 * decide_rate and picks_per_s >= 200_000,
        ),
    ]
    base = pct(decide, 50)
    for n in larger:
        p50 = pct(seq[f"decide@{n}"], 50)
        last = n == biggest
        rows.append(
            Row(
                f"`Decide` p50 at {n:,} backends ({sizes.candidates} named)",
                us(p50),
                f"{small} backends {us(base)}",
                f"{p50 / base:.2f} {TIMES}",
                f"≤ 1.2 {TIMES}" if last else "—",
                p50 <= 1.2 * base if last else None,
            )
        )
    whole_p50 = pct(seq["whole"], 50)
    rows.append(
        Row(
            f"`Decide` p50 naming no candidates, {biggest:,} backends (answer lists them all as fallbacks)",
            us(whole_p50),
            f"{small} backends {us(base)}",
            f"{whole_p50 / base:.1f} {TIMES}",
            "—",
            None,
        )
    )
    return rows, DecideFigures(p50_s=base, calls_per_s=decide_rate)


def _local_picks(target: str, sizes: Sizes) -> float:
    names = [fixtures.backend_name(i) for i in range(sizes.candidates)]
    with grpc.insecure_channel(target) as channel, RouterClient(channel) as client:
        if not client.wait(lambda c: c.connected, timeout_s=30):
            raise RuntimeError("RouterClient did not receive the routing table")
        client.pick(names)
        return 1.0 / mean_s(lambda: client.pick(names), sizes.picks)


def _ratio_row(figure: str, value: float, baseline: float, name: str, limit: float) -> Row:
    return Row(
        figure,
        us(value),
        f"{name} {us(baseline)}",
        f"{value / baseline:.2f} {TIMES} {name}",
        f"≤ {limit} {TIMES} {name}",
        value <= limit * baseline,
    )
