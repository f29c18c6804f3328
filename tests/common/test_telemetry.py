import math
from pathlib import Path

import pytest

from services.common.telemetry import Point, problem, read_csv, write_csv

GOOD = Point("gpu-a", 1_700_000_000.0, 10.0, 120.0, 0.01)


@pytest.mark.parametrize(
    ("point", "field"),
    [
        (GOOD._replace(backend_id=""), "backend_id"),
        (GOOD._replace(backend_id="has space"), "backend_id"),
        (GOOD._replace(backend_id="x" * 129), "backend_id"),
        (GOOD._replace(observed_at=0.0), "observed_at"),
        (GOOD._replace(load=-1.0), "load"),
        (GOOD._replace(load=math.inf), "load"),
        (GOOD._replace(latency_ms=math.nan), "latency_ms"),
        (GOOD._replace(error_rate=1.5), "error_rate"),
        (GOOD._replace(error_rate=math.nan), "error_rate"),
    ],
)
def test_each_broken_rule_names_its_field(point, field):
    reason = problem(point)
    assert reason is not None and reason.startswith(f"{field}:")


def test_a_good_point_has_no_problem_and_a_missing_time_does():
    assert problem(GOOD) is None
    assert problem(GOOD, has_time=False) == "observed_at: required"


def test_csv_round_trip_and_errors_name_the_line(tmp_path: Path):
    path = tmp_path / "h.csv"
    write_csv(path, [GOOD, GOOD._replace(observed_at=GOOD.observed_at + 10)])
    back = list(read_csv(path))
    assert [p.observed_at for p in back] == [GOOD.observed_at, GOOD.observed_at + 10]
    path.write_text("backend_id,observed_at,load,latency_ms,error_rate\na,2026-01-01T00:00:00Z,1,2,0\na,5,1,-2,0\n")
    with pytest.raises(ValueError, match=r"h.csv:3: latency_ms"):
        list(read_csv(path))
    path.write_text("backend_id,load\n")
    with pytest.raises(ValueError, match="missing columns"):
        list(read_csv(path))
