"""Shadow roles in the registry (candidate, previous), their persistence,
and how they reach the wire (ListModels roles, GetModelHealth off)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ace.v1 import predictor_pb2
from services.common.errors import InvalidInput
from services.predictor.registry import Registry, Role
from tests.predictor import models
from tests.predictor.test_server import connect


def publish(registry: Registry, version: str, value_ms: float, **flags: bool) -> None:
    onnx = models.onnx_constant(value_ms)
    registry.publish(models.make_meta(onnx, version=version, **flags), onnx)


def roles(registry: Registry) -> dict[str, Role | None]:
    return {info.meta.version: info.role for info in registry.list()}


def test_the_first_version_is_active_even_when_published_as_a_shadow(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    publish(reg, "v1", 100.0, shadow=True)
    assert roles(reg) == {"v1": Role.ACTIVE}


def test_a_shadow_runs_beside_the_active_version_and_a_newer_one_replaces_it(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    publish(reg, "v1", 100.0)
    publish(reg, "v2", 200.0, shadow=True)
    assert roles(reg) == {"v1": Role.ACTIVE, "v2": Role.CANDIDATE}
    assert reg.active is not None and reg.active.version == "v1"
    publish(reg, "v3", 300.0, shadow=True)
    assert roles(reg) == {"v1": Role.ACTIVE, "v2": None, "v3": Role.CANDIDATE}


def test_shadow_and_stage_only_together_are_refused(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    publish(reg, "v1", 100.0)
    with pytest.raises(InvalidInput, match=r"^shadow: "):
        publish(reg, "v2", 200.0, shadow=True, stage_only=True)
    assert roles(reg) == {"v1": Role.ACTIVE}


def test_roles_survive_a_restart(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    publish(reg, "v1", 100.0)
    publish(reg, "v2", 200.0)  # forced: v1 becomes PREVIOUS
    publish(reg, "v3", 300.0, shadow=True)
    doc = json.loads((tmp_path / "state.json").read_text())
    assert (doc["active"], doc["candidate"], doc["previous"]) == ("v2", "v3", "v1")
    again = Registry(tmp_path)
    assert roles(again) == {"v1": Role.PREVIOUS, "v2": Role.ACTIVE, "v3": Role.CANDIDATE}
    assert [model.version for _, model in again.shadows.models()] == ["v3", "v1"]


def test_promotion_and_restore_act_only_on_the_versions_they_name(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    publish(reg, "v1", 100.0)
    publish(reg, "v2", 200.0, shadow=True)
    assert not reg.promote("v9", "no such candidate")
    assert reg.promote("v2", "better")
    assert roles(reg) == {"v1": Role.PREVIOUS, "v2": Role.ACTIVE}
    assert not reg.restore_previous("v1", "v1 is not active")
    assert reg.restore_previous("v2", "worse")
    assert roles(reg) == {"v1": Role.ACTIVE, "v2": None}
    assert not reg.restore_previous("v1", "nothing to go back to")


def test_an_operator_rollback_ends_the_comparison_with_the_previous_version(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    publish(reg, "v1", 100.0)
    publish(reg, "v2", 200.0)
    reg.rollback(None)
    assert roles(reg) == {"v1": Role.ACTIVE, "v2": None}


def test_list_models_names_roles_and_health_says_the_loop_is_off(tmp_path: Path) -> None:
    with connect(tmp_path) as client:
        onnx_a, onnx_b = models.onnx_constant(100.0), models.onnx_constant(200.0)
        client.publish(models.make_meta(onnx_a, version="v1"), onnx_a)
        info = client.publish(models.make_meta(onnx_b, version="v2", shadow=True), onnx_b)
        assert not info.active and info.role == predictor_pb2.CANDIDATE and info.metadata.shadow
        listed = client.predictor.ListModels(predictor_pb2.ListModelsRequest(), timeout=5).models
        assert {m.metadata.version: m.role for m in listed} == {
            "v1": predictor_pb2.ACTIVE,
            "v2": predictor_pb2.CANDIDATE,
        }
        health = client.predictor.GetModelHealth(predictor_pb2.GetModelHealthRequest(), timeout=5)
        assert not health.enabled and not health.versions
