"""The model versions on disk and which one is active.

Layout under model_dir:
    versions/<version>/model.onnx   the ONNX bytes as published
    versions/<version>/meta.json    the ModelMeta (reference rows included, so a
                                    restart validates again) and published_at
    state.json                      {"active": ..., "history": [...]}: the active
                                    version and the previously active ones, newest last
    staging/                        versions being written; emptied at start

A version directory is written completely in staging/ and then renamed into
versions/, and state.json is replaced atomically, so a crash at any point
leaves either the old state or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import structlog

from services.common.errors import AlreadyExists, FailedPrecondition, InvalidInput, NotFound
from services.predictor import atomic
from services.predictor.model import LoadedModel, ModelMeta, check_bytes, load_and_validate

_log = structlog.get_logger("registry")

MODEL_FILE = "model.onnx"
META_FILE = "meta.json"
STATE_FILE = "state.json"


@dataclass(frozen=True)
class VersionInfo:
    """A stored version as ListModels and friends report it."""

    meta: ModelMeta
    published_at: float  # seconds since the epoch, this predictor's wall clock
    active: bool


def meta_to_json(meta: ModelMeta, published_at: float) -> bytes:
    # Shallow: asdict would deep-copy the reference rows first. Compact: the
    # rows are most of the document, and this runs holding the GIL while
    # Predict calls wait for it.
    doc: dict[str, Any] = {f.name: getattr(meta, f.name) for f in fields(meta)}
    doc["metrics"], doc["feature_importances"] = dict(meta.metrics), dict(meta.feature_importances)
    doc["published_at"] = published_at
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def load_in_background(meta: ModelMeta, onnx_bytes: bytes) -> LoadedModel:
    """load_and_validate in a thread of its own at the lowest CPU priority,
    waited for. Building and checking a session is about 10 ms of CPU that
    runs mostly outside the GIL; at normal priority it takes a core from the
    Predict calls of a 2-core machine for that long (the model swap
    benchmark's p99 was 11 x the quiet one), at nice 19 they preempt it."""
    outcome: list[LoadedModel | BaseException] = []

    def run() -> None:
        if sys.platform == "linux":  # there a thread has a nice value of its own
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        try:
            outcome.append(load_and_validate(meta, onnx_bytes))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="model-load", daemon=True)
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def meta_from_json(raw: bytes) -> tuple[ModelMeta, float]:
    """Raises ValueError, KeyError or TypeError for a document that is not a
    ModelMeta."""
    doc: dict[str, Any] = json.loads(raw)
    published_at = float(doc.pop("published_at"))
    for name in ("feature_names", "reference_inputs", "reference_outputs", "feature_means", "feature_stds"):
        doc[name] = tuple(doc[name])
    return ModelMeta(**doc), published_at


def _read_state(path: Path) -> tuple[str | None, list[str]]:
    """The active version and history from state.json; none when absent."""
    if not path.exists():
        return None, []
    try:
        doc = json.loads(path.read_bytes())
        active = doc["active"]
        history = [str(v) for v in doc["history"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        _log.warning("state_unreadable", path=str(path), reason=str(exc))
        return None, []
    return (str(active) if active is not None else None), history


class Registry:
    """Stores versions, keeps the active one loaded and restores it at start.

    Publishing and rolling back are serialised by a lock. Predict never takes
    it: it reads `active` once, and a swap is one reference assignment, so a
    call in flight finishes on the version it started with."""

    def __init__(self, model_dir: Path, clock: Callable[[], float] = time.time) -> None:
        self._dir = model_dir
        self._versions_dir = model_dir / "versions"
        self._staging_dir = model_dir / "staging"
        self._clock = clock
        self._lock = threading.Lock()
        # Versions are only ever added, so readers may look up without the lock.
        self._published_at: dict[str, float] = {}
        self._metas: dict[str, ModelMeta] = {}
        self._history: list[str] = []
        self._active: LoadedModel | None = None
        self._restore()

    @property
    def active(self) -> LoadedModel | None:
        """The model serving now. Read it once per call and use that."""
        return self._active

    def contains(self, version: str) -> bool:
        return version in self._metas

    def active_info(self) -> VersionInfo:
        model = self.active
        if model is None:
            raise FailedPrecondition("no active model")
        return VersionInfo(model.meta, self._published_at[model.version], active=True)

    def list(self) -> list[VersionInfo]:
        """Every stored version, newest first."""
        model = self.active
        active = model.version if model else None
        infos = [
            VersionInfo(meta, self._published_at[version], active=version == active)
            for version, meta in list(self._metas.items())
        ]
        infos.sort(key=lambda info: (info.published_at, info.meta.version), reverse=True)
        return infos

    def publish(self, meta: ModelMeta, onnx_bytes: bytes) -> VersionInfo:
        """Validates, stores and (unless stage_only) activates a version.
        A rejected version changes nothing."""
        with self._lock:
            if meta.version in self._metas:
                raise AlreadyExists(f"version: {meta.version!r} is already stored")
            try:
                model = load_in_background(meta, onnx_bytes)
            except InvalidInput as exc:
                _log.warning("model_rejected", version=meta.version, reason=str(exc))
                raise
            published_at = self._clock()
            self._store(meta, onnx_bytes, published_at)
            # published_at first: readers find a version through _metas.
            self._published_at[meta.version] = published_at
            self._metas[meta.version] = meta
            _log.info("model_published", version=meta.version, size_bytes=meta.size_bytes, stage_only=meta.stage_only)
            if not meta.stage_only:
                self._activate(model, remember_current=True, event="model_activated")
            return VersionInfo(meta, published_at, active=not meta.stage_only)

    def rollback(self, to_version: str | None) -> VersionInfo:
        """Activates `to_version`, or with None the version active before the
        current one. Repeated unnamed rollbacks walk further back; a named
        one can also activate a staged version."""
        with self._lock:
            current = self.active.version if self.active else None
            if to_version is None:
                if not self._history:
                    raise FailedPrecondition("no previously active version to roll back to")
                target = self._history[-1]
            elif to_version not in self._metas:
                raise NotFound(f"to_version: no stored version {to_version!r}")
            else:
                target = to_version
            if target == current:
                return self.active_info()
            meta = self._metas[target]
            try:
                model = load_in_background(meta, self._read_model(target))
            except (OSError, InvalidInput) as exc:
                raise FailedPrecondition(f"version {target!r} cannot be loaded any more: {exc}") from exc
            # An unnamed rollback undoes: the version left is not remembered,
            # so the next unnamed rollback goes one further back.
            self._activate(model, remember_current=to_version is not None, event="model_rolled_back")
            return VersionInfo(meta, self._published_at[target], active=True)

    def _activate(self, model: LoadedModel, remember_current: bool, event: str) -> None:
        previous = self.active.version if self.active else None
        history = [v for v in self._history if v != model.version]
        if remember_current and previous is not None:
            history = [v for v in history if v != previous] + [previous]
        # The state on disk first: if writing it fails, nothing has changed.
        atomic.replace_file(self._dir / STATE_FILE, json.dumps({"active": model.version, "history": history}).encode())
        self._history = history
        self._active = model
        _log.info(event, version=model.version, previous=previous)

    def _store(self, meta: ModelMeta, onnx_bytes: bytes, published_at: float) -> None:
        final = self._versions_dir / meta.version
        if final.exists():
            # Left by a version that failed to load at start; it was never served.
            self._discard(final)
        staging = self._staging_dir / uuid.uuid4().hex
        staging.mkdir()
        atomic.write_file(staging / MODEL_FILE, onnx_bytes)
        atomic.write_file(staging / META_FILE, meta_to_json(meta, published_at))
        atomic.fsync_dir(staging)
        staging.rename(final)
        atomic.fsync_dir(self._versions_dir)

    def _discard(self, path: Path) -> None:
        trash = self._staging_dir / uuid.uuid4().hex
        path.rename(trash)
        shutil.rmtree(trash)

    def _read_model(self, version: str) -> bytes:
        return (self._versions_dir / version / MODEL_FILE).read_bytes()

    def _restore(self) -> None:
        self._versions_dir.mkdir(parents=True, exist_ok=True)
        self._staging_dir.mkdir(exist_ok=True)
        # Whatever is in staging or a temp file is a write that never finished.
        for leftover in self._staging_dir.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        for leftover in self._dir.iterdir():
            if leftover.is_file() and atomic.is_temp_file(leftover):
                leftover.unlink()
        for path in sorted(self._versions_dir.iterdir()):
            try:
                meta, published_at = meta_from_json((path / META_FILE).read_bytes())
                if meta.version != path.name:
                    raise ValueError(f"meta.json names version {meta.version!r}")
                # Full validation waits until the version is activated; here
                # it is enough to know the bytes are the ones published.
                check_bytes(meta, self._read_model(path.name))
            except (OSError, ValueError, KeyError, TypeError, InvalidInput) as exc:
                _log.warning("model_skipped", version=path.name, reason=str(exc))
                continue
            self._published_at[meta.version] = published_at
            self._metas[meta.version] = meta
        active, history = _read_state(self._dir / STATE_FILE)
        self._history = [v for v in history if v in self._metas]
        if active is None:
            return
        if active not in self._metas:
            _log.warning("model_restore_failed", version=active, reason="version is not stored")
            return
        try:
            self._active = load_and_validate(self._metas[active], self._read_model(active))
        except (OSError, InvalidInput) as exc:
            _log.warning("model_restore_failed", version=active, reason=str(exc))
            return
        _log.info("model_restored", version=active, stored_versions=len(self._metas))
