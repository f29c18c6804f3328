from __future__ import annotations

import collections

import pytest

from tests.predictor.conftest import onnx_a, onnx_b

__all__ = ["onnx_a", "onnx_b"]  # the predictor tests' models, for the admin tests

# Cases the hostile-input properties tried, by RPC; printed after the run.
CASES: collections.Counter[str] = collections.Counter()
# The statuses those cases got, by RPC (a case may make several calls).
STATUSES: collections.defaultdict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CASES:
        terminalreporter.write_line("hostile input, cases tried per RPC:")
        for name, n in sorted(CASES.items()):
            statuses = ", ".join(f"{code} {count}" for code, count in STATUSES[name].most_common())
            terminalreporter.write_line(f"  {n:5d}  {name}: {statuses}")
