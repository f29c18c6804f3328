"""The fuzz targets of `make fuzz` run on their seed inputs without a
finding, so the harness cannot rot unnoticed between fuzzing runs (a renamed
field, a module moved). No fuzzing here: atheris mutates only under
`make fuzz`."""

from __future__ import annotations

import importlib

import pytest

TARGETS = ["model", "outcomes", "predict", "router", "telemetry", "trainer"]


def _fuzz():
    # Imported when a test runs, not at collection: tools.fuzz instruments
    # the services modules imported for the first time during its own
    # import, and by now the other test modules have imported theirs plainly.
    return importlib.import_module("tools.fuzz")


def test_the_targets_are_the_ones_make_fuzz_runs():
    assert sorted(_fuzz().TARGETS) == TARGETS


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_takes_its_seeds(target, tmp_path):
    fuzz = _fuzz()
    fuzz.seeds(target, tmp_path)
    inputs = sorted(tmp_path.iterdir())
    assert inputs
    for path in inputs:
        fuzz.TARGETS[target](path.read_bytes())
