"""The trainer CronJob's client: it exits non-zero whenever no new version
reached every predictor replica (its success path runs in the manifest
launch test, tests/deploy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.feature_store import server as fs_server
from services.feature_store.config import FeatureStoreConfig
from services.trainer import server as tr_server
from services.trainer.config import TrainerConfig
from tests.fakes import OPEN_ADMIN
from tests.ports import free_port
from tools import train_job

pytestmark = pytest.mark.slow


def run(*argv: str) -> tuple[int, list[str]]:
    lines: list[str] = []
    return train_job.run(train_job.parser().parse_args(list(argv)), echo=lines.append), lines


def test_an_unreachable_trainer_fails_the_job():
    code, lines = run("--trainer-addr", f"127.0.0.1:{free_port()}", "--timeout-s", "5")
    assert code == 1
    assert lines[-1].startswith("training failed: UNAVAILABLE")


def test_a_feature_store_without_history_fails_the_job():
    feature_store = fs_server.start(FeatureStoreConfig(host="127.0.0.1", port=0))
    trainer = tr_server.start(
        TrainerConfig(host="127.0.0.1", port=0, admin=OPEN_ADMIN, feature_store_addr=f"127.0.0.1:{feature_store.port}")
    )
    try:
        code, lines = run("--trainer-addr", f"127.0.0.1:{trainer.port}", "--duration-s", "3600")
    finally:
        trainer.stop(0)
        feature_store.stop(0)
    assert code == 1
    assert (
        lines[-1]
        == "training failed: FAILED_PRECONDITION: feature_store: history: this feature store keeps none (it runs without --history-dir)"
    )


def test_a_version_no_predictor_took_fails_the_job(tmp_path: Path):
    trainer = tr_server.start(
        TrainerConfig(host="127.0.0.1", port=0, admin=OPEN_ADMIN, predictor_addr=f"127.0.0.1:{free_port()}")
    )
    try:
        code, lines = run("--trainer-addr", f"127.0.0.1:{trainer.port}", "--synthetic-seed", "3")
    finally:
        trainer.stop(0)
    assert code == 1
    stages = [line.split()[0] for line in lines[:7]]
    assert stages == ["history", "features", "fit", "export", "verify", "publish", "done"]
    assert lines[-1].startswith("version rf-") and "was trained but not published everywhere" in lines[-1]
    assert any(line.startswith("replica ") and "refused: UNAVAILABLE" in line for line in lines)


def test_a_stage_from_a_newer_trainer_prints_as_its_number():
    assert train_job.stage_name(99) == "99"
