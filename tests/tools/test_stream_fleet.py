"""tools.stream_fleet against the four real services in process: it streams
a generated fleet, decides at every step and reports what the decisions
rested on and what the trainer is doing."""

from __future__ import annotations

import re

import pytest

from ace.v1 import trainer_pb2, trainer_pb2_grpc
from tests.e2e.conftest import Fleet
from tools import stream_fleet

pytestmark = pytest.mark.slow


def test_it_streams_decides_and_reports(fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    request = trainer_pb2.TrainRequest(synthetic=trainer_pb2.SyntheticSource(seed=1), publish=True, n_estimators=10)
    *_, last = trainer_pb2_grpc.TrainerStub(fleet.channels["trainer"]).Train(request, timeout=300, metadata=fleet.admin)
    assert last.result.published
    args = ["--hours", "0.25", "--pace-s", "0", "--print-every-s", "300", "--decisions", "2"]
    for name in ("feature_store", "router", "predictor", "trainer"):
        args += [f"--{name.replace('_', '-')}", fleet.addr(name)]
    assert stream_fleet.main(args) == 0
    out = capsys.readouterr().out
    assert "Streaming 90 steps of 8 backends" in out
    # This fleet's predictor runs with the trust gate off (tests/e2e/conftest.py).
    assert re.search(rf"model {last.result.version} \(learnt from synthetic\), PROVEN: trust gate off", out)
    summaries = re.findall(r"^\+0:(\d\d):00 \| decisions since the last line: (.*)$", out, flags=re.MULTILINE)
    assert [m for m, _ in summaries] == ["05", "10", "15"]
    assert "FORECAST" in summaries[-1][1]
