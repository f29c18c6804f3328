"""From telemetry to a decision through the ace.v1 contracts, with all four
real services: the trainer trains and publishes, the feature store ingests
the demo scenario step by step, the router decides. This is `make run`
without the printing."""

from __future__ import annotations

import pytest

from ace.v1 import router_pb2, trainer_pb2, trainer_pb2_grpc
from tests.e2e.conftest import Fleet
from tools.demo_scenario import episodes, shares, stream_scenario

pytestmark = pytest.mark.slow

THRESHOLD_MS = 300.0


@pytest.fixture
def trained(fleet: Fleet) -> tuple[Fleet, trainer_pb2.TrainResult]:
    request = trainer_pb2.TrainRequest(synthetic=trainer_pb2.SyntheticSource(seed=1), publish=True)
    progress = list(
        trainer_pb2_grpc.TrainerStub(fleet.channels["trainer"]).Train(request, timeout=300, metadata=fleet.admin)
    )
    result = progress[-1].result
    assert result.published, result.publish_error
    return fleet, result


def test_router_moves_traffic_before_the_spike_and_returns_after(trained):
    fleet, result = trained
    steps = stream_scenario(fleet.channels, requests=6, echo=lambda _line: None)
    first = steps[0]
    assert set(first.actions) == {"ROUND_ROBIN"}, "every backend is cold at the start"
    found, false_drains = episodes(steps, THRESHOLD_MS)
    assert [e.backend_id for e in found] == ["backend-c", "backend-a"]
    for e in found:
        assert e.lead_s is not None and e.lead_s > 0, f"{e.backend_id}'s breaker opened only after crossing: {e}"
        assert e.drain is not None and e.drain.steered > 0
        # The open breaker keeps --open-share (0.7) of the backend's share and
        # its capacity estimate falls as it slows: its share falls ahead of
        # the crossing, is cut while it is over, and comes back after.
        share = shares(steps, e, THRESHOLD_MS)
        assert share.before is not None and share.leading is not None and share.over is not None
        assert share.after is not None
        assert share.leading < share.before and share.over < share.leading and share.after > share.over, share
    # backend-b never crosses and its breaker never opens.
    assert sum(s.skipped["backend-b"] for s in steps) == 0
    assert all(d.backend_id != "backend-b" for d in false_drains)
    last = steps[-1]
    assert set(last.actions) == {"PRIMARY"}, "load has fallen: back to plain rotation"
    assert all(route.basis == router_pb2.FORECAST for route in last.routes.values())
    assert last.models == {result.version}, "decisions name the model behind them"
