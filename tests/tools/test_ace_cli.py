"""`python -m tools.ace` against the four real services: the tables a person
reads, the JSON a script reads, and a clear message and exit code when a
service says no."""

from __future__ import annotations

import json
import time

import pytest

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, predictor_pb2_grpc, router_pb2, router_pb2_grpc
from tests.e2e.conftest import Fleet
from tests.e2e.test_prometheus import BACKENDS, spike
from tests.predictor import models
from tools.ace.__main__ import main


def ace(fleet: Fleet, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--router-addr", fleet.addr("router"), "--predictor-addr", fleet.addr("predictor"), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def spiked(fleet: Fleet) -> router_pb2_grpc.RouterStub:
    store = feature_store_pb2_grpc.FeatureStoreStub(fleet.channels["feature_store"])
    store.Ingest(feature_store_pb2.IngestRequest(points=spike(time.time())), timeout=10)
    router = router_pb2_grpc.RouterStub(fleet.channels["router"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if len(router.GetRoutingTable(router_pb2.GetRoutingTableRequest(), timeout=5).backends) == len(BACKENDS):
            break
        time.sleep(0.1)
    return router


def test_risk_and_table_show_the_spiking_backend_first_and_open(fleet: Fleet, capsys) -> None:
    spiked(fleet)
    code, out, _ = ace(fleet, capsys, "risk")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "1 of 3 backends forecast at or over 300 ms in the next 300 s"
    assert "model none (breakers run on observed latency)" in lines[1]
    rows = [line for line in lines if line.startswith("gpu-")]
    assert rows[0].split()[:4] == ["gpu-c", "OPEN", "1,000", "ms"] and "BREACH" in rows[0]
    code, out, _ = ace(fleet, capsys, "--json", "risk")
    doc = json.loads(out)
    assert code == 0 and doc["backends_at_risk"] == 1 and doc["backends"][0]["backend_id"] == "gpu-c"
    code, out, _ = ace(fleet, capsys, "table")
    assert code == 0 and "feature store connected, predictor UNAVAILABLE" in out
    rows = [line for line in out.splitlines() if line.startswith("gpu-")]
    assert [row.split()[1] for row in rows] == ["closed", "closed", "OPEN"]
    # The share of plain Decide's weighted rotation: gpu-c, slow while the
    # others are not, has its capacity estimate capped, and its breaker is open.
    assert "CAPACITY RPS" in out and "SHARE" in out
    share = {row.split()[0]: int(next(w for w in row.split() if w.endswith("%"))[:-1]) for row in rows}
    assert share["gpu-c"] < 5 and share["gpu-a"] > 45 and sum(share.values()) in (99, 100, 101)


def test_explain_tells_a_decision_and_its_outcome(fleet: Fleet, capsys) -> None:
    router = spiked(fleet)
    decision = router.Decide(router_pb2.DecideRequest(candidates=["gpu-a"]), timeout=5)
    outcome = router_pb2.Outcome(decision_id=decision.decision_id, latency_ms=123.0)
    router.ReportOutcomes(router_pb2.ReportOutcomesRequest(outcomes=[outcome]), timeout=5)
    code, out, _ = ace(fleet, capsys, "explain", decision.decision_id)
    assert code == 0
    assert out.startswith(f"decision {decision.decision_id}: sent to gpu-a at ")
    assert "  latency reported      123 ms\n  quality reported      not yet\n" in out
    assert "  gpu-a now             breaker closed, risk 100 ms, latency 100 ms" in out
    code, out, _ = ace(fleet, capsys, "--json", "explain", decision.decision_id)
    assert json.loads(out)["latency_ms"] == 123.0


@pytest.mark.parametrize(("decision_id", "status"), [("r0-1", "NOT_FOUND"), ("", "INVALID_ARGUMENT")])
def test_a_refused_call_is_one_line_on_stderr_and_exit_code_1(fleet: Fleet, capsys, decision_id, status) -> None:
    code, out, err = ace(fleet, capsys, "explain", decision_id)
    assert (code, out) == (1, "")
    assert err.startswith(f"ace explain: the router at {fleet.addr('router')} answered {status}: decision_id: ")
    if status == "NOT_FOUND":
        assert "was issued by another router instance (or before a restart)" in err


def test_a_service_that_is_not_there_is_named(fleet: Fleet, capsys) -> None:
    code = main(["--router-addr", "127.0.0.1:1", "--timeout-s", "2", "risk"])
    assert code == 1 and "the router at 127.0.0.1:1 answered UNAVAILABLE" in capsys.readouterr().err


def test_models_lists_versions_with_their_roles(fleet: Fleet, capsys) -> None:
    code, out, _ = ace(fleet, capsys, "models")
    assert code == 0 and out.startswith("no model versions stored")
    onnx = models.onnx_constant(120.0)
    requests = models.publish_requests(
        models.make_meta(onnx, version="v-const", history_source="HISTORY_SOURCE_SYNTHETIC"), onnx
    )
    predictor_pb2_grpc.PredictorStub(fleet.channels["predictor"]).PublishModel(
        iter(requests), timeout=30, metadata=fleet.admin
    )
    code, out, _ = ace(fleet, capsys, "models")
    assert code == 0
    row = out.splitlines()[1].split()
    # Without the learning loop nothing scores it: its trust is not shown.
    assert row[:2] == ["v-const", "active"] and row[-2:] == ["synthetic", "-"]
    assert "live scores: off (the predictor runs without --feature-store-addr)" in out
