"""ReportOutcomes and GetPolicyShadow on a real router on port 0, fed by
stand-in dependencies that are real servers too."""

from __future__ import annotations

import time

import grpc
import pytest

from ace.v1 import router_pb2
from tests.fakes import vector
from tests.router.test_server import at


def outcome(decision_id: str, **kw) -> router_pb2.Outcome:
    return router_pb2.Outcome(decision_id=decision_id, **kw)


def test_receipts_answer_each_outcome_in_place(router):
    store, stub, watch = router
    store.batches.put([vector("a", 100, 120), vector("b", 100, 150)])
    watch.until(at("b", 100))
    first, second = (stub.Decide(router_pb2.DecideRequest()) for _ in range(2))
    assert first.decision_id and first.decision_id != second.decision_id
    instance = first.decision_id.rpartition("-")[0]
    response = stub.ReportOutcomes(
        router_pb2.ReportOutcomesRequest(
            outcomes=[
                outcome(second.decision_id, latency_ms=90.0),  # out of order: the later decision first
                outcome(first.decision_id, latency_ms=110.0),
                outcome(first.decision_id, latency_ms=110.0),  # a retry
                outcome(f"{instance}-999", quality=0.5),
                outcome(first.decision_id, quality=0.8),  # quality, later
                outcome(second.decision_id, latency_ms=91.0),  # contradicts
                outcome(second.decision_id, quality=1.5),
                outcome(second.decision_id, failed=True),
            ]
        )
    )
    statuses = [(r.index, r.status) for r in response.receipts]
    assert statuses == [
        (0, router_pb2.ACCEPTED),
        (1, router_pb2.ACCEPTED),
        (2, router_pb2.DUPLICATE),
        (3, router_pb2.REJECTED),
        (4, router_pb2.ACCEPTED),
        (5, router_pb2.REJECTED),
        (6, router_pb2.REJECTED),
        (7, router_pb2.ACCEPTED),
    ]
    reasons = [r.reason for r in response.receipts]
    assert reasons[0] == "" and reasons[2].startswith("outcomes[2].latency_ms: already recorded")
    assert reasons[3].startswith(f"outcomes[3].decision_id: '{instance}-999' was never issued")
    assert reasons[5].startswith("outcomes[5].latency_ms:") and "already has 90.0" in reasons[5]
    assert reasons[6].startswith("outcomes[6].quality: must be in [0, 1]")


def test_too_many_outcomes_are_invalid_argument(router):
    _store, stub, _watch = router
    with pytest.raises(grpc.RpcError) as err:
        stub.ReportOutcomes(router_pb2.ReportOutcomesRequest(outcomes=[outcome("x-1")] * 10_001))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "outcomes: at most 10000" in err.value.details()


def test_without_a_shadow_get_policy_shadow_is_failed_precondition(router):
    _store, stub, _watch = router
    with pytest.raises(grpc.RpcError) as err:
        stub.GetPolicyShadow(router_pb2.GetPolicyShadowRequest())
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "--shadow-threshold-ms" in err.value.details()


@pytest.mark.parametrize(
    "router", [["--shadow-threshold-ms", "250", "--open-after-s", "0", "--share-by-capacity", "off"]], indirect=True
)
def test_the_shadow_threshold_is_compared_on_live_traffic(router):
    store, stub, watch = router
    # a is forecast at 280 ms: the live 300 ms breaker stays closed, the
    # shadow's 250 ms one opens. Requests to a breach the 300 ms SLO.
    store.batches.put([vector("a", 100, 280), vector("b", 100, 100)])
    watch.until(at("b", 100))
    decisions = [stub.Decide(router_pb2.DecideRequest()) for _ in range(40)]
    assert {d.backend_id for d in decisions} == {"a", "b"}
    seen = {"a": 420.0, "b": 110.0}
    response = stub.ReportOutcomes(
        router_pb2.ReportOutcomesRequest(
            outcomes=[outcome(d.decision_id, latency_ms=seen[d.backend_id]) for d in decisions]
        )
    )
    assert {r.status for r in response.receipts} == {router_pb2.ACCEPTED}
    report = stub.GetPolicyShadow(router_pb2.GetPolicyShadowRequest())
    assert (report.live_threshold_ms, report.alternative_threshold_ms) == (300, 250)
    assert (report.decisions, report.differing) == (40, 20)
    assert (report.compared, report.missing_live, report.missing_alternative) == (20, 0, 0)
    assert (report.live_breaches, report.alternative_breaches) == (20, 0)
    assert (report.only_live_breached, report.only_alternative_breached) == (20, 0)
    assert report.p_value == pytest.approx(2 / 2**20)
    assert report.significant
    assert "the alternative would have fewer breaches" in report.reason


@pytest.mark.parametrize(
    "router", [["--shadow-threshold-ms", "250", "--open-after-s", "0", "--share-by-capacity", "off"]], indirect=True
)
def test_no_outcomes_means_no_comparison_yet(router):
    store, stub, watch = router
    store.batches.put([vector("a", 100, 280), vector("b", 100, 100)])
    watch.until(at("b", 100))
    for _ in range(4):
        stub.Decide(router_pb2.DecideRequest())
    report = stub.GetPolicyShadow(router_pb2.GetPolicyShadowRequest())
    assert (report.differing, report.compared, report.missing_live) == (2, 0, 2)
    assert report.p_value == 1 and not report.significant
    assert report.reason.startswith("no comparison yet")


def test_callers_that_report_every_end_get_least_loaded_choices_on_the_routers_counts(router):
    store, stub, watch = router
    store.batches.put([vector("a", 100, 120), vector("b", 100, 150)])
    watch.until(at("b", 100))
    plain = stub.Decide(router_pb2.DecideRequest())
    assert "outcomes its callers report" not in plain.reason
    answered = [(stub.Decide(router_pb2.DecideRequest()), time.monotonic()) for _ in range(300)]
    # Each request lasted from its answer until now, as a proxy times it:
    # reported as it ends, never sooner than it could have.
    now = time.monotonic()
    stub.ReportOutcomes(
        router_pb2.ReportOutcomesRequest(
            outcomes=[outcome(plain.decision_id, latency_ms=1000.0 * (now - answered[0][1]))]
            + [outcome(d.decision_id, latency_ms=1000.0 * (now - t)) for d, t in answered]
        )
    )
    held = [stub.Decide(router_pb2.DecideRequest()) for _ in range(4)]
    assert "in-flight counts are this router's, from the outcomes its callers report" in held[-1].reason
    assert sorted(d.backend_id for d in held) == ["a", "a", "b", "b"]
