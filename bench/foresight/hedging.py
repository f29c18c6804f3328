"""Whether hedged requests pay on the foresight benchmark's pool (issue 13
asked, before adding hedging advice to Decision).

A hedged request (Dean and Barroso, "The Tail at Scale", CACM 2013) is sent
again to another backend when it is still unanswered after a delay; the
first success counts. Nothing is cancelled here: the copy takes a slot like
any request. A budget caps the copies at a share of requests, as gRPC's
retry throttling and Envoy's retry budgets do: each request adds `share`
of a token (at most BURST held), each copy spends one.

    python -m bench.foresight.hedging --seeds 104,105

runs least outstanding with and without hedging over every traffic source
and fault class of those seeds and prints the share of requests over the
SLO or failed. Settings seeds only: it chose what ACE does not add."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.foresight import faults, runner, score, sim, traffic
from bench.foresight.routers import LeastOutstanding
from bench.foresight.sim import Telemetry

# Tokens a budget may save up: a burst of copies at most this long.
BURST = 10.0


class Hedged:
    """Least outstanding that hedges each request still unanswered after
    `after_ms`, within a budget of `share` copies per request (None: no
    budget)."""

    wants_done = True

    def __init__(self, inner: LeastOutstanding, after_ms: float, share: float | None, burst: float = BURST) -> None:
        self.inner = inner
        self.burst = burst
        self.hedge_after_ms = after_ms
        self.share = share
        self.tokens = 0.0
        self.name = f"{inner.name}, hedged after {after_ms:g} ms" + (f" ({share:.0%} budget)" if share else "")
        self.trail = None

    def pick(self, t: float) -> int:
        if self.share is not None:
            self.tokens = min(self.tokens + self.share, self.burst)
        return self.inner.pick(t)

    def pick_other(self, t: float, exclude: int) -> int | None:
        if self.share is not None:
            if self.tokens < 1.0:
                return None
            self.tokens -= 1.0
        return self.inner.pick_other(t, exclude)

    def done(self, backend: int, t: float, latency_ms: float, failed: bool, service_ms: float, queue: int) -> None:
        self.inner.done(backend, t, latency_ms, failed, service_ms, queue)

    def tick(self, telemetry: Telemetry) -> None:
        self.inner.tick(telemetry)


@dataclass
class Tally:
    users: score.Users = field(default_factory=score.Users)
    copies: int = 0
    # Every request, the warm-up's too: what the copies are a share of.
    requests: int = 0

    def add(self, other: Tally) -> None:
        self.users.add(other.users)
        self.copies += other.copies
        self.requests += other.requests


def tally(run: sim.Run, cfg: runner.Config) -> Tally:
    return Tally(score.users(run, cfg.pool, cfg.score_from_s), run.hedged, len(run.latency_ms))


# (delay ms, budget share); (None, None) is no hedging.
VARIANTS: tuple[tuple[float | None, float | None], ...] = (
    (None, None),
    (150.0, None),
    (250.0, None),
    (150.0, 0.02),
    (250.0, 0.02),
)


def measure(
    seeds: Sequence[int], variants: Sequence[tuple[float | None, float | None]] = VARIANTS, burst: float = BURST
) -> dict[tuple[float | None, float | None], dict[str, Tally]]:
    cfg = runner.Config()
    out: dict[tuple[float | None, float | None], dict[str, Tally]] = {v: {} for v in variants}
    for seed in seeds:
        for source in traffic.SOURCES:
            for fault in faults.FAULTS:
                case = runner.Case(source, fault, seed)
                scenario = case.scenario(cfg)
                arrivals = case.arrivals(cfg, scenario)
                for v in variants:
                    after, share = v
                    base = LeastOutstanding(cfg.pool.backends, seed)
                    router = base if after is None else Hedged(base, after, share, burst)
                    out[v].setdefault(fault, Tally()).add(tally(sim.run(router, arrivals, scenario, cfg.pool), cfg))
    return out


def _label(v: tuple[float | None, float | None]) -> str:
    after, share = v
    if after is None:
        return "least outstanding, no hedging"
    return f"hedged after {after:g} ms, " + ("no budget" if share is None else f"budget {share:.0%} of requests")


def table(results: dict[tuple[float | None, float | None], dict[str, Tally]]) -> str:
    head = "| | copies | all | " + " | ".join(f"`{f}`" for f in faults.FAULTS) + " |"
    rows = [head, "|---|---:|---:|" + "---:|" * len(faults.FAULTS)]
    for v, by_fault in results.items():
        every = Tally()
        for t in by_fault.values():
            every.add(t)
        cells = [f"{100 * by_fault[f].users.over_share:.2f}%" for f in faults.FAULTS]
        copies = f"{100 * every.copies / every.requests:.1f}%"
        rows.append(f"| {_label(v)} | {copies} | {100 * every.users.over_share:.2f}% | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--seeds", default="104,105", help="comma-separated seeds (default: the settings seeds)")
    p.add_argument("--burst", type=float, default=BURST, help="copies a budget may save up")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"Share of requests over the SLO or failed, seeds {args.seeds}, budget burst {args.burst:g}:\n")
    print(table(measure(seeds, burst=args.burst)))


if __name__ == "__main__":
    main()
