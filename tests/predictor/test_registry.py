from __future__ import annotations

import itertools
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from services.common.errors import AlreadyExists, FailedPrecondition, InvalidInput, NotFound
from services.predictor.registry import Registry, load_in_background
from tests.predictor import models


def clock() -> itertools.count[float]:
    return itertools.count(1000.0)


def registry(path: Path) -> Registry:
    ticks = clock()
    return Registry(path, clock=lambda: next(ticks))


def state(path: Path) -> dict[str, object]:
    """The active version and history of state.json (the shadow roles are
    checked in test_shadows.py)."""
    doc: dict[str, object] = json.loads((path / "state.json").read_text())
    return {key: doc[key] for key in ("active", "history")}


def test_empty_dir_has_no_active(tmp_path: Path) -> None:
    reg = registry(tmp_path)
    assert reg.active is None
    assert reg.list() == []
    with pytest.raises(FailedPrecondition, match=r"^no active model$"):
        reg.active_info()


def test_publish_writes_complete_layout(tmp_path: Path, onnx_a: bytes) -> None:
    reg = registry(tmp_path)
    meta = models.make_meta(onnx_a, version="v1")
    info = reg.publish(meta, onnx_a)
    assert info.active and info.meta == meta and info.published_at == 1000.0
    assert (tmp_path / "versions" / "v1" / "model.onnx").read_bytes() == onnx_a
    stored = json.loads((tmp_path / "versions" / "v1" / "meta.json").read_text())
    assert stored["published_at"] == 1000.0
    assert stored["reference_outputs"] == list(meta.reference_outputs)
    assert state(tmp_path) == {"active": "v1", "history": []}
    # Nothing but finished files: no staging leftovers, no temp files.
    assert list((tmp_path / "staging").iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staging", "state.json", "versions"]
    assert reg.active is not None and reg.active.version == "v1"


def test_rejected_model_changes_nothing(tmp_path: Path, onnx_a: bytes, onnx_b: bytes) -> None:
    reg = registry(tmp_path)
    reg.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    before = state(tmp_path)
    with pytest.raises(InvalidInput, match=r"^sha256"):
        reg.publish(models.make_meta(onnx_b, version="v2", sha256="ab" * 32), onnx_b)
    assert state(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "versions").iterdir()) == ["v1"]
    assert [i.meta.version for i in reg.list()] == ["v1"]


def test_already_exists(tmp_path: Path, onnx_a: bytes, onnx_b: bytes) -> None:
    reg = registry(tmp_path)
    reg.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    assert reg.contains("v1")
    with pytest.raises(AlreadyExists, match=r"^version: 'v1' is already stored"):
        reg.publish(models.make_meta(onnx_b, version="v1"), onnx_b)
    assert (tmp_path / "versions" / "v1" / "model.onnx").read_bytes() == onnx_a


def test_stage_only_stores_without_activating(tmp_path: Path, onnx_a: bytes, onnx_b: bytes) -> None:
    reg = registry(tmp_path)
    reg.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    info = reg.publish(models.make_meta(onnx_b, version="v2", stage_only=True), onnx_b)
    assert not info.active
    assert reg.active is not None and reg.active.version == "v1"
    assert [(i.meta.version, i.active) for i in reg.list()] == [("v2", False), ("v1", True)]
    # A named rollback is how a staged version goes live.
    assert reg.rollback("v2").active
    assert state(tmp_path) == {"active": "v2", "history": ["v1"]}


def test_list_newest_first(tmp_path: Path, onnx_a: bytes) -> None:
    reg = registry(tmp_path)
    for version in ("b", "a", "c"):
        reg.publish(models.make_meta(onnx_a, version=version), onnx_a)
    assert [(i.meta.version, i.active) for i in reg.list()] == [("c", True), ("a", False), ("b", False)]


def test_rollback_rules(tmp_path: Path, onnx_a: bytes, onnx_b: bytes) -> None:
    reg = registry(tmp_path)
    with pytest.raises(FailedPrecondition, match=r"^no previously active version"):
        reg.rollback(None)
    reg.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    with pytest.raises(FailedPrecondition, match=r"^no previously active version"):
        reg.rollback(None)
    with pytest.raises(NotFound, match=r"^to_version: no stored version 'v9'"):
        reg.rollback("v9")
    reg.publish(models.make_meta(onnx_b, version="v2"), onnx_b)
    reg.publish(models.make_meta(onnx_a, version="v3"), onnx_a)
    assert state(tmp_path) == {"active": "v3", "history": ["v1", "v2"]}

    # Unnamed rollbacks walk back one version at a time until none is left.
    assert reg.rollback(None).meta.version == "v2"
    assert reg.rollback(None).meta.version == "v1"
    assert state(tmp_path) == {"active": "v1", "history": []}
    with pytest.raises(FailedPrecondition):
        reg.rollback(None)

    # A named rollback remembers the version it leaves.
    assert reg.rollback("v3").meta.version == "v3"
    assert state(tmp_path) == {"active": "v3", "history": ["v1"]}
    assert reg.rollback("v3").meta.version == "v3"  # already active: nothing changes
    assert state(tmp_path) == {"active": "v3", "history": ["v1"]}
    assert reg.rollback(None).meta.version == "v1"


def test_restart_restores_active_and_predicts_identically(tmp_path: Path, onnx_a: bytes, onnx_b: bytes) -> None:
    first = registry(tmp_path)
    first.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    first.publish(models.make_meta(onnx_b, version="v2"), onnx_b)
    assert first.active is not None
    x = models.inputs(20, seed=11)
    want = first.active.predict(x)

    second = Registry(tmp_path)
    assert second.active is not None and second.active.version == "v2"
    np.testing.assert_array_equal(second.active.predict(x), want)
    assert second.list() == first.list()
    assert second.active_info() == first.active_info()
    assert second.rollback(None).meta.version == "v1"


def test_restart_skips_broken_versions_and_leftovers(tmp_path: Path, onnx_a: bytes, onnx_b: bytes) -> None:
    first = registry(tmp_path)
    first.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    first.publish(models.make_meta(onnx_b, version="v2", stage_only=True), onnx_b)
    # A crash mid-publish leaves only a staging dir; a crash mid-state-write a temp file.
    (tmp_path / "staging" / "deadbeef").mkdir()
    (tmp_path / "staging" / "deadbeef" / "model.onnx").write_bytes(onnx_b[:100])
    (tmp_path / ".state.json.x1.tmp").write_text("{")
    # Bit rot in a stored version, and a directory that is not a version.
    (tmp_path / "versions" / "v2" / "model.onnx").write_bytes(onnx_b[:-1] + b"\x00")
    (tmp_path / "versions" / "junk").mkdir()

    second = Registry(tmp_path)
    assert [i.meta.version for i in second.list()] == ["v1"]
    assert second.active is not None and second.active.version == "v1"
    assert list((tmp_path / "staging").iterdir()) == []
    assert not (tmp_path / ".state.json.x1.tmp").exists()
    # The broken version's name can be published again.
    second.publish(models.make_meta(onnx_b, version="v2"), onnx_b)
    assert (tmp_path / "versions" / "v2" / "model.onnx").read_bytes() == onnx_b


def test_restart_with_broken_active_keeps_history(tmp_path: Path, onnx_a: bytes, onnx_b: bytes) -> None:
    first = registry(tmp_path)
    first.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
    first.publish(models.make_meta(onnx_b, version="v2"), onnx_b)
    (tmp_path / "versions" / "v2" / "model.onnx").write_bytes(b"rotten")

    second = Registry(tmp_path)
    assert second.active is None
    assert second.rollback(None).meta.version == "v1"
    assert second.active is not None and second.active.version == "v1"


def test_restart_revalidates_active(tmp_path: Path, onnx_a: bytes) -> None:
    first = registry(tmp_path)
    meta = models.make_meta(onnx_a, version="v1")
    first.publish(meta, onnx_a)
    # meta.json edited so the references no longer match: the model must not serve.
    lie = replace(meta, reference_outputs=tuple(v + 5.0 for v in meta.reference_outputs))
    doc = json.loads((tmp_path / "versions" / "v1" / "meta.json").read_text())
    doc["reference_outputs"] = list(lie.reference_outputs)
    (tmp_path / "versions" / "v1" / "meta.json").write_text(json.dumps(doc))

    assert Registry(tmp_path).active is None


def test_loading_in_background_answers_and_raises_in_the_caller(onnx_a: bytes) -> None:
    meta = models.make_meta(onnx_a, version="v1")
    mine = os.getpriority(os.PRIO_PROCESS, 0)
    model = load_in_background(meta, onnx_a)
    assert model.version == "v1"
    x = models.inputs(5, seed=3)
    np.testing.assert_array_equal(model.predict(x), models.run_onnx(onnx_a, x))
    with pytest.raises(InvalidInput, match=r"^sha256"):
        load_in_background(replace(meta, sha256="ab" * 32), onnx_a)
    # Only the loading thread runs at low priority, never the caller (a server's pool thread).
    assert os.getpriority(os.PRIO_PROCESS, 0) == mine
