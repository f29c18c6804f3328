"""A tiny run of `make soak`: the real services as processes, a few seconds
of load; every well-formed call succeeds, every outcome reaches the feature
store and the table is printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import soak

pytestmark = pytest.mark.slow


def test_a_short_soak_has_no_failed_call(tmp_path: Path):
    lines: list[str] = []
    args = soak.parser().parse_args(
        [
            "--duration-s",
            "2",
            "--warmup-s",
            "1",
            "--workers",
            "1",
            "--backends",
            "8",
            "--run-dir",
            str(tmp_path / "soak"),
        ]
    )
    assert soak.run(args, echo=lines.append) == 0, "\n".join(lines)
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines if line.startswith("| ")}
    for rpc in soak.RPCS:
        cells = [c.strip() for c in rows[rpc].strip("|").split("|")]
        assert int(cells[1]) > 0 and cells[2] == "0", rows[rpc]
    for service in ("feature_store", "predictor", "router", "trainer"):
        assert service in rows
    # Every decision was reported back, and what the router accepted reached
    # the feature store's outcome log.
    [line] = [line for line in lines if line.startswith("outcomes accepted")]
    accepted, stored = (int(part.rsplit(" ", 1)[1]) for part in line.split("; "))
    assert accepted > 0 and stored == accepted, line
