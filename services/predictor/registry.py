"""The model versions on disk and which one is active.

Layout under model_dir:
    versions/<version>/model.onnx   the ONNX bytes as published
    versions/<version>/meta.json    the ModelMeta (reference rows included, so a
                                    restart validates again) and published_at
    state.json                      {"active": ..., "history": [...], "candidate": ...,
                                    "previous": ...}: the active version, the
                                    previously active ones (newest last) and
                                    the versions running in shadow
    staging/                        versions being written; emptied at start

Besides the active version, up to two versions run in shadow (the learning
loop scores them): the CANDIDATE, published with `shadow`, waiting for the
gate; and the PREVIOUS version, the one a promotion or a forced publish
replaced, kept so that the rollback rule can compare. Both are restored at
start with the active version; their scores are not (the gate counts
afresh).

A version directory is written completely in staging/ and then renamed into
versions/, and state.json is replaced atomically, so a crash at any point
leaves either the old state or the new one.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
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


class Role(enum.Enum):
    # Answers Predict.
    ACTIVE = "ACTIVE"
    # Published as a shadow while a version was active; waits for the gate.
    CANDIDATE = "CANDIDATE"
    # Replaced by a promotion or a forced publish; runs in shadow so that
    # the rollback rule can compare the active version with it.
    PREVIOUS = "PREVIOUS"


@dataclass(frozen=True)
class VersionInfo:
    """A stored version as ListModels and friends report it."""

    meta: ModelMeta
    published_at: float  # seconds since the epoch, this predictor's wall clock
    active: bool
    role: Role | None = None  # None: stored only


@dataclass(frozen=True)
class Shadows:
    """The versions running beside the active one; replaced as a whole."""

    candidate: LoadedModel | None = None
    previous: LoadedModel | None = None

    def role_of(self, version: str) -> Role | None:
        if self.candidate is not None and self.candidate.version == version:
            return Role.CANDIDATE
        if self.previous is not None and self.previous.version == version:
            return Role.PREVIOUS
        return None

    def models(self) -> list[tuple[Role, LoadedModel]]:
        out = [(Role.CANDIDATE, self.candidate), (Role.PREVIOUS, self.previous)]
        return [(role, model) for role, model in out if model is not None]


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


@dataclass(frozen=True)
class _State:
    active: str | None = None
    history: tuple[str, ...] = ()
    candidate: str | None = None
    previous: str | None = None


def _read_state(path: Path) -> _State:
    """What state.json says; nothing active when it is absent. The shadow
    keys are optional: older predictors did not write them."""
    if not path.exists():
        return _State()
    try:
        doc = json.loads(path.read_bytes())
        names = {key: doc.get(key) for key in ("active", "candidate", "previous")}
        history = tuple(str(v) for v in doc["history"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _log.warning("state_unreadable", path=str(path), reason=str(exc))
        return _State()
    active, candidate, previous = (str(v) if v is not None else None for v in names.values())
    return _State(active, history, candidate, previous)


# The kind of swap each activation event is, for on_swap.
SWAP_KINDS = {"model_activated": "publish", "model_promoted": "promotion", "model_rolled_back": "rollback"}


class Registry:
    """Stores versions, keeps the active one loaded and restores it at start.

    Publishing and rolling back are serialised by a lock. Predict never takes
    it: it reads `active` once, and a swap is one reference assignment, so a
    call in flight finishes on the version it started with."""

    def __init__(self, model_dir: Path, clock: Callable[[], float] = time.time) -> None:
        # Told of every swap of the active version: its kind (publish,
        # promotion, rollback or operator_rollback) and the seconds from the
        # call's start (loading and checking the version included) to the swap.
        self.on_swap: Callable[[str, float], None] = lambda kind, seconds: None
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
        self._shadows = Shadows()
        self._restore()

    @property
    def active(self) -> LoadedModel | None:
        """The model serving now. Read it once per call and use that."""
        return self._active

    @property
    def shadows(self) -> Shadows:
        """The versions running in shadow now; read it once and use that."""
        return self._shadows

    def contains(self, version: str) -> bool:
        return version in self._metas

    def active_info(self) -> VersionInfo:
        model = self.active
        if model is None:
            raise FailedPrecondition("no active model")
        return VersionInfo(model.meta, self._published_at[model.version], active=True, role=Role.ACTIVE)

    def list(self) -> list[VersionInfo]:
        """Every stored version, newest first."""
        model = self.active
        shadows = self.shadows
        active = model.version if model else None
        infos = [
            VersionInfo(
                meta,
                self._published_at[version],
                active=version == active,
                role=Role.ACTIVE if version == active else shadows.role_of(version),
            )
            for version, meta in list(self._metas.items())
        ]
        infos.sort(key=lambda info: (info.published_at, info.meta.version), reverse=True)
        return infos

    def publish(self, meta: ModelMeta, onnx_bytes: bytes) -> VersionInfo:
        """Validates and stores a version; then, unless stage_only, makes it
        the candidate (shadow, when a version is active) or activates it. An
        activation that replaces an active version is the operator's forced
        publish: logged as such, the replaced version kept as PREVIOUS. A
        rejected version changes nothing."""
        with self._lock:
            if meta.version in self._metas:
                raise AlreadyExists(f"version: {meta.version!r} is already stored")
            if meta.shadow and meta.stage_only:
                raise InvalidInput("shadow: a version is either staged only or shadowed, not both")
            started = time.perf_counter()
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
            _log.info(
                "model_published",
                version=meta.version,
                size_bytes=meta.size_bytes,
                stage_only=meta.stage_only,
                shadow=meta.shadow,
                history_source=meta.history_source or "unsaid",
            )
            replaced = self.active
            if meta.stage_only:
                return VersionInfo(meta, published_at, active=False)
            if meta.shadow and replaced is not None:
                dropped = self._shadows.candidate
                self._set_shadows(replaced.version, Shadows(candidate=model, previous=self._shadows.previous))
                _log.info(
                    "model_shadowed",
                    version=model.version,
                    active=replaced.version,
                    replaced_candidate=dropped.version if dropped else None,
                )
                return VersionInfo(meta, published_at, active=False, role=Role.CANDIDATE)
            shadows = self._shadows
            if replaced is not None:
                shadows = Shadows(candidate=self._without(shadows.candidate, model), previous=replaced)
            self._activate(
                model,
                remember_current=True,
                event="model_activated",
                shadows=shadows,
                started=started,
                forced=replaced is not None,
            )
            return VersionInfo(meta, published_at, active=True, role=Role.ACTIVE)

    def promote(self, version: str, reason: str) -> bool:
        """Makes the candidate `version` active, keeping the version it
        replaces as PREVIOUS. False (nothing done) when `version` is no
        longer the candidate: a newer one replaced it meanwhile."""
        started = time.perf_counter()
        with self._lock:
            candidate, replaced = self._shadows.candidate, self.active
            if candidate is None or candidate.version != version or replaced is None:
                return False
            shadows = Shadows(candidate=None, previous=replaced)
            self._activate(
                candidate,
                remember_current=True,
                event="model_promoted",
                shadows=shadows,
                started=started,
                reason=reason,
            )
            return True

    def restore_previous(self, active_version: str, reason: str) -> bool:
        """Rolls the active version back to PREVIOUS, which stops running in
        shadow; the version left is not remembered. False (nothing done)
        when `active_version` is no longer active or there is no PREVIOUS."""
        started = time.perf_counter()
        with self._lock:
            previous, current = self._shadows.previous, self.active
            if previous is None or current is None or current.version != active_version:
                return False
            shadows = Shadows(candidate=self._shadows.candidate, previous=None)
            self._activate(
                previous,
                remember_current=False,
                event="model_rolled_back",
                shadows=shadows,
                started=started,
                reason=reason,
            )
            return True

    @staticmethod
    def _without(shadow: LoadedModel | None, model: LoadedModel) -> LoadedModel | None:
        return None if shadow is not None and shadow.version == model.version else shadow

    def rollback(self, to_version: str | None) -> VersionInfo:
        """Activates `to_version`, or with None the version active before the
        current one. Repeated unnamed rollbacks walk further back; a named
        one can also activate a staged version."""
        started = time.perf_counter()
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
            # The operator has taken over: the version left is no longer
            # compared with the new active one.
            shadows = Shadows(candidate=self._without(self._shadows.candidate, model), previous=None)
            self._activate(
                model,
                remember_current=to_version is not None,
                event="model_rolled_back",
                shadows=shadows,
                started=started,
                operator=True,
            )
            return VersionInfo(meta, self._published_at[target], active=True, role=Role.ACTIVE)

    def _activate(
        self,
        model: LoadedModel,
        remember_current: bool,
        event: str,
        shadows: Shadows,
        started: float,
        **fields: object,
    ) -> None:
        previous = self.active.version if self.active else None
        history = [v for v in self._history if v != model.version]
        if remember_current and previous is not None:
            history = [v for v in history if v != previous] + [previous]
        # The state on disk first: if writing it fails, nothing has changed.
        self._write_state(model.version, history, shadows)
        self._history = history
        self._active = model
        self._shadows = shadows
        _log.info(event, version=model.version, previous=previous, **fields)
        self.on_swap(
            SWAP_KINDS[event] if not fields.get("operator") else "operator_rollback", time.perf_counter() - started
        )

    def _set_shadows(self, active: str, shadows: Shadows) -> None:
        self._write_state(active, self._history, shadows)
        self._shadows = shadows

    def _write_state(self, active: str, history: Sequence[str], shadows: Shadows) -> None:
        doc = {
            "active": active,
            "history": history,
            "candidate": shadows.candidate.version if shadows.candidate else None,
            "previous": shadows.previous.version if shadows.previous else None,
        }
        atomic.replace_file(self._dir / STATE_FILE, json.dumps(doc).encode())

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
        state = _read_state(self._dir / STATE_FILE)
        self._history = [v for v in state.history if v in self._metas]
        if state.active is None:
            return
        self._active = self._load_stored(state.active)
        if self._active is None:
            return
        _log.info("model_restored", version=state.active, stored_versions=len(self._metas))
        candidate = self._load_stored(state.candidate) if state.candidate else None
        previous = self._load_stored(state.previous) if state.previous else None
        self._shadows = Shadows(candidate=candidate, previous=previous)

    def _load_stored(self, version: str) -> LoadedModel | None:
        if version not in self._metas:
            _log.warning("model_restore_failed", version=version, reason="version is not stored")
            return None
        try:
            return load_and_validate(self._metas[version], self._read_model(version))
        except (OSError, InvalidInput) as exc:
            _log.warning("model_restore_failed", version=version, reason=str(exc))
            return None
