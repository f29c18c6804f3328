"""The demo's summary judges the router: crossings with their lead time,
and drains no breach followed."""

from __future__ import annotations

import collections
from collections.abc import Sequence

import pytest

from ace.v1 import router_pb2
from services.common.telemetry import Point
from tools.demo_scenario import Step, episodes, shares

OPEN, CLOSED = router_pb2.OPEN, router_pb2.CLOSED


def steps_of(rows: Sequence[tuple[float, router_pb2.BreakerState, int]]) -> list[Step]:
    """rows: (latency of backend x, its breaker state, requests that skipped it)."""
    steps = []
    for i, (latency, state, skipped) in enumerate(rows):
        t = 10.0 * i
        steps.append(
            Step(
                t,
                points={"x": Point("x", t, 1, latency, 0), "y": Point("y", t, 1, 100, 0)},
                routes={
                    "x": router_pb2.BackendRoute(backend_id="x", state=state),
                    "y": router_pb2.BackendRoute(backend_id="y", state=CLOSED),
                },
                picks=collections.Counter({"y": 2} if skipped else {"x": 1, "y": 1}),
                skipped=collections.Counter({"x": skipped} if skipped else {}),
            )
        )
    return steps


def test_a_drain_before_the_crossing_has_a_lead_and_dips_do_not_split_it():
    rows = [
        (100, CLOSED, 0),
        (150, OPEN, 1),
        (250, OPEN, 1),
        (350, OPEN, 1),
        (280, OPEN, 1),
        (400, OPEN, 1),
        (120, CLOSED, 0),
    ]
    found, false_drains = episodes(steps_of(rows), 300)
    assert len(found) == 1
    [e] = found
    assert (e.crossed_at, e.lead_s, e.peak_ms, e.served_while_over) == (30, 20, 400, 0)
    assert e.drain is not None and e.drain.steered == 5
    assert false_drains == []


def test_a_crossing_without_a_drain_is_reported_as_never_moved():
    found, _ = episodes(steps_of([(100, CLOSED, 0), (350, CLOSED, 0), (100, CLOSED, 0)]), 300)
    assert [(e.crossed_at, e.drain, e.served_while_over) for e in found] == [(10, None, 1)]


def test_a_drain_with_no_breach_is_a_false_alarm():
    found, false_drains = episodes(steps_of([(100, CLOSED, 0), (120, OPEN, 1), (110, OPEN, 1), (100, CLOSED, 0)]), 300)
    assert found == []
    assert [(d.backend_id, d.start, d.end, d.steered) for d in false_drains] == [("x", 10, 20, 2)]


def test_shares_are_taken_before_into_and_after_an_episode():
    # x takes half the decisions, then none from 20 s before the crossing
    # until its breaker closes, then half again.
    rows = [(100, CLOSED, 0)] * 60 + [(200, OPEN, 1)] * 2 + [(400, OPEN, 1)] * 3 + [(100, CLOSED, 0)] * 40
    steps = steps_of(rows)
    [e] = episodes(steps, 300)[0]
    got = shares(steps, e, 300)
    assert got.before == 0.5 and got.leading == pytest.approx(4 / 12) and got.over == 0.0 and got.after == 0.5
    assert got.words() == (
        "50% 5-10 min before, 33% in the minute before, 0% while over the threshold, "
        "50% in the 5 min after its breaker closed"
    )
