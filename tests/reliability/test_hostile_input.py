"""Hostile input, every RPC of every service: hypothesis generates arbitrary
and malformed messages (huge batches and strings, NaN and infinities,
timestamps at and past the extremes, empty and duplicate ids, truncated,
oversized and reordered model streams, feature matrices of the wrong size,
huge in-flight maps, outcome reports for ids never issued, raw bytes that are
no message at all) and sends them to the real servers on port 0. Every call
gets a clear status (never INTERNAL or UNKNOWN), the server stays SERVING, and
valid data sent alongside bad data is kept: points, outcome summaries, and
outcomes, which must reach the feature store's history through the router. Examples are derandomized and bounded so that
`make test` stays fast; tests/reliability/conftest.py prints the cases tried
per RPC."""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import timestamp_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ace.v1 import (
    feature_store_pb2,
    feature_store_pb2_grpc,
    predictor_pb2,
    predictor_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
    telemetry_pb2,
    trainer_pb2,
    trainer_pb2_grpc,
)
from services.common import outcome_summary
from services.common.features import FEATURE_NAMES, SCHEMA_VERSION
from services.common.serving import RunningServer
from services.common.timeutil import to_seconds, to_timestamp
from services.feature_store import server as fs_server
from services.feature_store.config import FeatureStoreConfig
from services.predictor import server as pr_server
from services.predictor.config import PredictorConfig
from services.router import config as rt_config
from services.router import server as rt_server
from services.trainer import server as tr_server
from services.trainer.config import TrainerConfig
from tests.fakes import ADMIN, ADMIN_CALL
from tests.predictor import models
from tests.reliability.conftest import CASES, STATUSES

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
CLEAR_FAILURES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
BASE_TIME = 1_767_225_600.0  # 2026-01-01
EXAMPLES = 60
# A backend the router knows from the start, so that Decide issues decision
# ids whose outcomes can be reported.
STEADY = "outcome-steady"
T = TypeVar("T")
_current = [""]  # the RPC whose property runs, for STATUSES


@dataclass
class Fleet:
    servers: dict[str, RunningServer]
    channels: dict[str, grpc.Channel]
    onnx: bytes

    def stub(self, name: str) -> Any:
        stubs = {
            "feature_store": feature_store_pb2_grpc.FeatureStoreStub,
            "predictor": predictor_pb2_grpc.PredictorStub,
            "learning": predictor_pb2_grpc.PredictorStub,
            "router": router_pb2_grpc.RouterStub,
            "trainer": trainer_pb2_grpc.TrainerStub,
        }
        return stubs[name](self.channels[name])


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("hostile")
    servers: dict[str, RunningServer] = {}
    servers["feature_store"] = fs_server.start(
        FeatureStoreConfig(host="127.0.0.1", port=0, history_dir=tmp / "history", max_streams=4)
    )
    servers["predictor"] = pr_server.start(
        PredictorConfig(host="127.0.0.1", port=0, model_dir=tmp / "models", admin=ADMIN, max_model_bytes=MIB)
    )
    addr = {name: f"127.0.0.1:{s.port}" for name, s in servers.items()}
    # A second predictor with the learning loop on, for the matrices' event
    # times and GetModelHealth; the first keeps it off, so that no promotion
    # or rollback of its own changes the active version under the other tests.
    servers["learning"] = pr_server.start(
        PredictorConfig(
            host="127.0.0.1",
            port=0,
            model_dir=tmp / "learning",
            admin=ADMIN,
            max_model_bytes=MIB,
            feature_store_addr=addr["feature_store"],
        )
    )
    servers["router"] = rt_server.start(
        rt_config.load(
            [
                *("--host", "127.0.0.1", "--port", "0", "--max-streams", "4"),
                *("--feature-store-addr", addr["feature_store"], "--predictor-addr", addr["predictor"]),
                # The policy shadow on, and outcomes forwarded soon after they are reported.
                *("--shadow-threshold-ms", "150", "--outcome-flush-s", "0.2"),
            ]
        )
    )
    servers["trainer"] = tr_server.start(
        TrainerConfig(
            host="127.0.0.1",
            port=0,
            admin=ADMIN,
            predictor_addr=addr["predictor"],
            feature_store_addr=addr["feature_store"],
            data_dir=tmp,
        )
    )
    channels = {name: grpc.insecure_channel(f"127.0.0.1:{s.port}") for name, s in servers.items()}
    onnx = models.onnx_model(seed=0)
    fleet = Fleet(servers, channels, onnx)
    meta = models.make_meta(onnx, version="v1")
    for name in ("predictor", "learning"):
        fleet.stub(name).PublishModel(iter(models.publish_requests(meta, onnx)), timeout=30, metadata=ADMIN_CALL)
    know_steady(fleet)
    yield fleet
    for channel in channels.values():
        channel.close()
    for running in servers.values():
        running.stop(0)


def know_steady(fleet: Fleet) -> None:
    """Gives STEADY telemetry and waits, a bounded time, until the router has
    it in its table."""
    points = [
        telemetry_pb2.TelemetryPoint(backend_id=STEADY, observed_at=to_timestamp(BASE_TIME + i), latency_ms=50.0)
        for i in range(3)
    ]
    fleet.stub("feature_store").Ingest(feature_store_pb2.IngestRequest(points=points), timeout=10)
    router = fleet.stub("router")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        table = router.GetRoutingTable(router_pb2.GetRoutingTableRequest(), timeout=5)
        if STEADY in {b.backend_id for b in table.backends}:
            return
        time.sleep(0.05)
    raise AssertionError(f"the router never learned of {STEADY}")


def outcome(call: Callable[[], object], field: str | tuple[str, ...] = ()) -> grpc.StatusCode:
    """Runs one call; fails the test on INTERNAL or UNKNOWN, and on an
    INVALID_ARGUMENT or FAILED_PRECONDITION whose details do not start with
    `field` (one of them) when given."""
    try:
        call()
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        assert code not in CLEAR_FAILURES, f"{code.name}: {exc.details()}"
        if field and code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
            assert str(exc.details()).startswith(field), f"{code.name} names no field: {exc.details()}"
    else:
        code = grpc.StatusCode.OK
    STATUSES[_current[0]][code.name] += 1
    return code


def answer(call: Callable[[], T], field: str | tuple[str, ...] = ()) -> T | None:
    """The reply of a call checked as outcome() checks it; None when it failed."""
    replies: list[T] = []
    outcome(lambda: replies.append(call()), field)
    return replies[0] if replies else None


def assert_serving(fleet: Fleet, service: str) -> None:
    health = health_pb2_grpc.HealthStub(fleet.channels[service])
    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def run_property(name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None], examples: int) -> None:
    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def prop(value: Any) -> None:
        CASES[name] += 1
        _current[0] = name
        check(value)

    prop()


# --- values at the edges -----------------------------------------------------

HUGE_STRING = "h" * (2 * MIB)  # past every server's message cap but the predictor's
weird_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0, 0.0, 2.0**63]),
)
names = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "a", "a b", "../../etc/passwd", "\x00", "é", "x" * 129, "x" * 100_000]),
)
ids = st.one_of(names, st.just(HUGE_STRING))
# True one time in ten (hypothesis leans to the first of a sampled_from).
rarely = st.sampled_from([False] * 9 + [True])
id_lists = st.one_of(st.lists(ids, max_size=8), st.lists(st.sampled_from(["a", "a", "b"]), max_size=6))


@st.composite
def timestamps(draw: st.DrawFn) -> timestamp_pb2.Timestamp:
    seconds = draw(
        st.one_of(
            st.integers(-(2**63), 2**63 - 1),
            st.sampled_from([0, -62135596800, 253402300799, 253402300800, int(BASE_TIME)]),
        )
    )
    nanos = draw(st.one_of(st.integers(0, 999_999_999), st.integers(-(2**31), 2**31 - 1)))
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


@st.composite
def points(draw: st.DrawFn) -> telemetry_pb2.TelemetryPoint:
    msg = telemetry_pb2.TelemetryPoint(
        backend_id=draw(ids), load=draw(weird_floats), latency_ms=draw(weird_floats), error_rate=draw(weird_floats)
    )
    if draw(st.booleans()):
        msg.observed_at.CopyFrom(draw(timestamps()))
    return msg


def vectors() -> st.SearchStrategy[telemetry_pb2.FeatureVector]:
    return st.builds(
        lambda b, s, v: telemetry_pb2.FeatureVector(backend_id=b, schema_version=s, values=v),
        ids,
        st.one_of(st.just(SCHEMA_VERSION), ids),
        st.one_of(
            st.lists(weird_floats, max_size=len(FEATURE_NAMES) + 2),
            st.lists(st.just(1.0), min_size=len(FEATURE_NAMES), max_size=len(FEATURE_NAMES)),
        ),
    )


# --- the feature store --------------------------------------------------------

_keep = itertools.count()


def check_ingest(fleet: Fleet) -> Callable[[tuple[list[telemetry_pb2.TelemetryPoint], int]], None]:
    stub = fleet.stub("feature_store")

    def check(drawn: tuple[list[telemetry_pb2.TelemetryPoint], int]) -> None:
        hostile, huge = drawn
        n = next(_keep)
        keep = f"keep-{n}"
        valid = [
            telemetry_pb2.TelemetryPoint(
                backend_id=keep, observed_at=to_timestamp(BASE_TIME + n + i / 10), load=1.0, latency_ms=50.0
            )
            for i in range(2)
        ]
        batch = [*hostile[: len(hostile) // 2], valid[0], *hostile[len(hostile) // 2 :], valid[1]]
        # A huge batch: past the cap on points per request (small points, so
        # that it is the count and not the size that is refused).
        batch += [telemetry_pb2.TelemetryPoint(backend_id="many", latency_ms=1.0)] * huge
        replies: list[feature_store_pb2.IngestResponse] = []
        code = outcome(lambda: replies.append(stub.Ingest(feature_store_pb2.IngestRequest(points=batch), timeout=10)))
        if code == grpc.StatusCode.OK:
            rejected = {r.index for r in replies[0].rejected}
            assert not rejected & {i for i, p in enumerate(batch) if p.backend_id == keep}, replies[0].rejected
            got = stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(backend_ids=[keep]), timeout=5)
            assert got.vectors[0].points_in_window == 2
        else:
            # Refused as a whole only for a bound of the whole request.
            assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), code
        assert_serving(fleet, "feature_store")

    return check


def test_ingest(fleet: Fleet) -> None:
    strategy = st.tuples(st.lists(points(), max_size=12), st.sampled_from([0] * 9 + [10_001]))
    run_property("FeatureStore/Ingest", strategy, check_ingest(fleet), EXAMPLES)


def test_ingest_stream(fleet: Fleet) -> None:
    stub = fleet.stub("feature_store")

    def check(hostile: list[telemetry_pb2.TelemetryPoint]) -> None:
        outcome(lambda: stub.IngestStream(iter(hostile), timeout=10))
        assert_serving(fleet, "feature_store")

    run_property("FeatureStore/IngestStream", st.lists(points(), max_size=12), check, EXAMPLES)


def test_get_features(fleet: Fleet) -> None:
    stub = fleet.stub("feature_store")

    def check(backend_ids: list[str]) -> None:
        outcome(lambda: stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(backend_ids=backend_ids), timeout=10))
        assert_serving(fleet, "feature_store")

    run_property("FeatureStore/GetFeatures", id_lists, check, EXAMPLES)


def test_watch_features(fleet: Fleet) -> None:
    stub = fleet.stub("feature_store")

    def check(raw: bytes) -> None:
        watch = fleet.channels["feature_store"].unary_stream("/ace.v1.FeatureStore/WatchFeatures")(raw, timeout=10)
        outcome(lambda: next(watch))
        watch.cancel()
        assert_serving(fleet, "feature_store")
        outcome(lambda: stub.GetFeatures(feature_store_pb2.GetFeaturesRequest(), timeout=5))

    run_property("FeatureStore/WatchFeatures", st.binary(max_size=64), check, EXAMPLES)


def test_read_history(fleet: Fleet) -> None:
    stub = fleet.stub("feature_store")

    @st.composite
    def requests(draw: st.DrawFn) -> feature_store_pb2.ReadHistoryRequest:
        msg = feature_store_pb2.ReadHistoryRequest(
            last_s=draw(weird_floats),
            backend_ids=draw(id_lists),
            include_outcomes=draw(st.booleans()),
            skip_points=draw(st.booleans()),
        )
        for field in ("start_time", "end_time"):
            if draw(st.booleans()):
                getattr(msg, field).CopyFrom(draw(timestamps()))
        return msg

    def check(request: feature_store_pb2.ReadHistoryRequest) -> None:
        outcome(lambda: list(stub.ReadHistory(request, timeout=10)))
        assert_serving(fleet, "feature_store")

    run_property("FeatureStore/ReadHistory", requests(), check, EXAMPLES)


counts = st.one_of(st.sampled_from([0, 1, 2, 2**32 - 1]), st.integers(0, 2**32 - 1))


@st.composite
def summaries(draw: st.DrawFn) -> feature_store_pb2.OutcomeSummary:
    msg = feature_store_pb2.OutcomeSummary(
        # Rarely huge: a few in one batch pass the message cap, and the
        # whole batch is refused before any summary is looked at.
        backend_id=draw(ids if draw(rarely) else names),
        bucket_s=draw(st.one_of(weird_floats, st.just(10.0))),
        quality_count=draw(counts),
        quality_sum=draw(weird_floats),
        latency_count=draw(counts),
        latency_sum_ms=draw(weird_floats),
        latency_max_ms=draw(weird_floats),
    )
    if draw(st.booleans()):
        msg.bucket_start.CopyFrom(draw(timestamps()))
    return msg


SUMMARY_FIELDS = tuple(f"{name}:" for name in feature_store_pb2.OutcomeSummary.DESCRIPTOR.fields_by_name)


def test_ingest_outcomes(fleet: Fleet) -> None:
    stub = fleet.stub("feature_store")

    def check(drawn: tuple[str, list[feature_store_pb2.OutcomeSummary], int]) -> None:
        batch_id, hostile, huge = drawn
        keep = f"keep-outcomes-{next(_keep)}"
        valid = [
            outcome_summary.to_message(outcome_summary.Summary(keep, BASE_TIME + 10 * i, 10.0, 2, 1.5, 3, 150.0, 70.0))
            for i in range(2)
        ]
        batch = [*hostile[: len(hostile) // 2], valid[0], *hostile[len(hostile) // 2 :], valid[1]]
        batch += [outcome_summary.to_message(outcome_summary.Summary("many", BASE_TIME, 10.0, 1, 1.0))] * huge
        request = feature_store_pb2.IngestOutcomesRequest(batch_id=batch_id, summaries=batch)
        replies: list[feature_store_pb2.IngestOutcomesResponse] = []
        code = outcome(lambda: replies.append(stub.IngestOutcomes(request, timeout=10)), ("batch_id:", "summaries:"))
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED), code
        stored = [
            s
            for b in stub.ReadHistory(
                feature_store_pb2.ReadHistoryRequest(backend_ids=[keep], include_outcomes=True, skip_points=True),
                timeout=10,
            )
            for s in b.outcomes
        ]
        if code == grpc.StatusCode.OK and not replies[0].duplicate:
            reply = replies[0]
            assert reply.accepted + len(reply.rejected) == len(batch)
            valid_at = {i for i, m in enumerate(batch) if m.backend_id == keep}
            assert not {r.index for r in reply.rejected} & valid_at, reply.rejected
            for r in reply.rejected:
                assert r.reason.startswith(SUMMARY_FIELDS), r.reason
            assert stored == valid  # the valid summaries are kept, as they were sent
        else:
            # Refused as a whole, or a batch id seen before: nothing stored.
            assert code != grpc.StatusCode.OK or replies[0].accepted == 0
            assert stored == []
        assert_serving(fleet, "feature_store")

    strategy = st.tuples(
        st.one_of(ids, st.sampled_from(["again", "again", ""])),
        st.lists(summaries(), max_size=12),
        st.sampled_from([0] * 9 + [10_001]),
    )
    run_property("FeatureStore/IngestOutcomes", strategy, check, EXAMPLES)


# --- the predictor ------------------------------------------------------------


def test_predict(fleet: Fleet) -> None:
    stub = fleet.stub("predictor")

    def check(drawn: tuple[list[telemetry_pb2.FeatureVector], int]) -> None:
        vs, huge = drawn
        vs = vs + [telemetry_pb2.FeatureVector(backend_id="b", schema_version=SCHEMA_VERSION)] * huge
        outcome(lambda: stub.Predict(predictor_pb2.PredictRequest(vectors=vs), timeout=10))
        assert_serving(fleet, "predictor")

    strategy = st.tuples(st.lists(vectors(), max_size=8), st.sampled_from([0] * 9 + [10_001]))
    run_property("Predictor/Predict", strategy, check, EXAMPLES)


event_times = st.one_of(
    weird_floats,
    st.sampled_from([BASE_TIME, 0.0, -1.0, 253402300800.0, -(2.0**63), 2.0**63]),
    st.floats(BASE_TIME - 600, BASE_TIME + 600),
)


@st.composite
def matrices(draw: st.DrawFn) -> predictor_pb2.PredictRequest:
    """A matrix of any row count with too few, too many or the right number
    of values (finite or not), event times of any count and value, and
    sometimes vectors too."""
    k = len(FEATURE_NAMES)
    rows = draw(st.sampled_from([10_000, 10_001])) if draw(rarely) else draw(st.integers(0, 6))
    if rows > 6:
        backend_ids = ["b"] * rows
    else:
        backend_ids = draw(st.lists(st.sampled_from(["a", "a", "b", "", STEADY]), min_size=rows, max_size=rows))
    n = max(rows * k + draw(st.sampled_from([0] * 6 + [-1, 1, -k, k])), 0)
    kind = "ones" if rows > 6 else draw(st.sampled_from(["ones", "finite", "finite", "weird"]))
    if kind == "ones":
        values: list[float] = [1.0] * n
    else:
        element = st.floats(0, 1e6) if kind == "finite" else st.one_of(weird_floats, st.floats(0, 100))
        values = draw(st.lists(element, min_size=n, max_size=n))
    as_of_s = draw(
        st.one_of(
            st.just([]),
            st.lists(event_times, min_size=min(rows, 8), max_size=min(rows, 8)),
            st.lists(event_times, max_size=8),
        )
    )
    request = predictor_pb2.PredictRequest(
        matrix=predictor_pb2.FeatureMatrix(
            backend_ids=backend_ids,
            schema_version=draw(ids) if draw(rarely) else SCHEMA_VERSION,
            values=values,
            as_of_s=as_of_s,
        )
    )
    if draw(rarely):
        request.vectors.add(backend_id="a", schema_version=SCHEMA_VERSION, values=[1.0] * k)
    return request


def test_predict_matrix(fleet: Fleet) -> None:
    def check(request: predictor_pb2.PredictRequest) -> None:
        for name in ("predictor", "learning"):
            stub = fleet.stub(name)
            reply = answer(functools.partial(stub.Predict, request, timeout=10), "matrix")
            if reply is not None:
                assert len(reply.predicted_latency_ms) == len(request.matrix.backend_ids)
                assert not reply.predictions
            assert_serving(fleet, name)
        # The learning loop took whatever event times came with it.
        health = fleet.stub("learning").GetModelHealth(predictor_pb2.GetModelHealthRequest(), timeout=5)
        assert health.enabled and [v.version for v in health.versions] == ["v1"]

    run_property("Predictor/Predict (matrix)", matrices(), check, EXAMPLES)


@st.composite
def metadata(draw: st.DrawFn, onnx: bytes) -> predictor_pb2.ModelMetadata:
    """Metadata that is either hostile everywhere or true to `onnx` but for
    one field."""
    meta = models.make_meta(onnx, version=f"p{draw(st.integers(0, 10**9))}", stage_only=True)
    msg = pr_server.meta_to_proto(meta)
    msg.reference_inputs.extend(meta.reference_inputs)
    msg.reference_outputs.extend(meta.reference_outputs)
    # Half the streams carry metadata true to the model, so that valid
    # publishes are mixed in with the hostile ones.
    field = draw(
        st.one_of(
            st.just("none"),
            st.sampled_from(
                ["version", "schema_version", "sha256", "size_bytes", "tolerance", "horizon", "names", "refs"]
            ),
        )
    )
    if field == "version":
        msg.version = draw(ids)
    elif field == "schema_version":
        msg.schema_version = draw(ids)
    elif field == "sha256":
        msg.sha256 = draw(st.one_of(ids, st.just("0" * 64)))
    elif field == "size_bytes":
        msg.size_bytes = draw(st.integers(0, 2**64 - 1))
    elif field == "tolerance":
        msg.reference_tolerance_ms = draw(weird_floats)
    elif field == "horizon":
        msg.horizon_s = draw(weird_floats)
    elif field == "names":
        del msg.feature_names[:]
        msg.feature_names.extend(draw(id_lists))
    elif field == "refs":
        del msg.reference_outputs[:]
        msg.reference_outputs.extend(draw(st.lists(weird_floats, max_size=10)))
    return msg


@st.composite
def publish_streams(draw: st.DrawFn, onnx: bytes) -> list[predictor_pb2.PublishModelRequest]:
    meta = predictor_pb2.PublishModelRequest(metadata=draw(metadata(onnx)))
    body = draw(
        st.one_of(st.just("whole"), st.sampled_from(["truncated", "garbage", "oversized_chunk", "empty", "none"]))
    )
    data = {
        "whole": onnx,
        "truncated": onnx[: len(onnx) // 2],
        "garbage": draw(st.binary(min_size=1, max_size=2048)),
        "oversized_chunk": b"\x00" * (MIB + 1),
        "empty": b"",
        "none": b"",
    }[body]
    size = draw(st.sampled_from([64, 1024, MIB]))
    chunks = [predictor_pb2.PublishModelRequest(chunk=data[i : i + size]) for i in range(0, len(data), size)]
    if body == "oversized_chunk":
        chunks = [predictor_pb2.PublishModelRequest(chunk=data)]
    order = draw(
        st.one_of(
            st.just("in_order"),
            st.sampled_from(["metadata_last", "metadata_twice", "no_metadata", "shuffled", "empty_part"]),
        )
    )
    if order == "metadata_last":
        return [*chunks, meta]
    if order == "metadata_twice":
        return [meta, *chunks[:1], meta, *chunks[1:]]
    if order == "no_metadata":
        return chunks
    if order == "shuffled":
        return [meta, *draw(st.permutations(chunks))]
    if order == "empty_part":
        return [meta, predictor_pb2.PublishModelRequest(), *chunks]
    return [meta, *chunks]


def test_publish_model(fleet: Fleet) -> None:
    stub = fleet.stub("predictor")

    def check(stream: list[predictor_pb2.PublishModelRequest]) -> None:
        code = outcome(lambda: stub.PublishModel(iter(stream), timeout=30, metadata=ADMIN_CALL))
        assert code in (
            grpc.StatusCode.OK,
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.ALREADY_EXISTS,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ), code
        assert_serving(fleet, "predictor")
        if code == grpc.StatusCode.OK:  # a valid publish is kept
            version = stream[0].metadata.version
            listed = stub.ListModels(predictor_pb2.ListModelsRequest(), timeout=5).models
            assert version in {m.metadata.version for m in listed}
        # Every publish is stage_only: the active model never changes.
        active = stub.GetActiveModel(predictor_pb2.GetActiveModelRequest(), timeout=5).metadata.version
        assert active == "v1"

    run_property("Predictor/PublishModel", publish_streams(fleet.onnx), check, EXAMPLES)


def test_get_active_model_and_list_models(fleet: Fleet) -> None:
    channel = fleet.channels["predictor"]

    def check(raw: bytes) -> None:
        for method in ("GetActiveModel", "ListModels", "GetModelHealth"):
            call = channel.unary_unary(f"/ace.v1.Predictor/{method}")
            outcome(functools.partial(call, raw, timeout=10))
        health = fleet.channels["learning"].unary_unary("/ace.v1.Predictor/GetModelHealth")
        outcome(functools.partial(health, raw, timeout=10))
        assert_serving(fleet, "predictor")
        assert_serving(fleet, "learning")

    run_property("Predictor/GetActiveModel+ListModels+GetModelHealth", st.binary(max_size=256), check, EXAMPLES)


def test_rollback(fleet: Fleet) -> None:
    stub = fleet.stub("predictor")

    def check(to_version: str) -> None:
        outcome(
            lambda: stub.Rollback(predictor_pb2.RollbackRequest(to_version=to_version), timeout=10, metadata=ADMIN_CALL)
        )
        assert_serving(fleet, "predictor")
        # Whatever it rolled to, the predictor still predicts.
        stub.Predict(predictor_pb2.PredictRequest(), timeout=5)

    run_property("Predictor/Rollback", st.one_of(ids, st.sampled_from(["v1", "p1", ".", ".."])), check, EXAMPLES)


# --- the router ---------------------------------------------------------------


HUGE_MAPS = {size: {f"b{i}": i for i in range(size)} | {STEADY: 2**32 - 1} for size in (20_000, 100_000)}


@st.composite
def in_flight_maps(draw: st.DrawFn) -> dict[str, int]:
    """Counts at the edges of a uint32, for known and unknown backends; now
    and then a huge map (under and over the router's message cap)."""
    size = draw(st.sampled_from([0] * 8 + [20_000, 100_000]))  # 260 KB, 1.3 MB
    if size:
        return HUGE_MAPS[size]
    return draw(
        st.dictionaries(
            st.one_of(names, st.just(STEADY)),
            st.one_of(st.sampled_from([0, 1, 2**32 - 1]), st.integers(0, 2**32 - 1)),
            max_size=8,
        )
    )


def test_decide(fleet: Fleet) -> None:
    stub = fleet.stub("router")

    def check(drawn: tuple[str, list[str], dict[str, int]]) -> None:
        request_id, candidates, in_flight = drawn
        request = router_pb2.DecideRequest(request_id=request_id, candidates=candidates, in_flight=in_flight)
        replies: list[router_pb2.Decision] = []
        code = outcome(lambda: replies.append(stub.Decide(request, timeout=10)), "candidates")
        if code == grpc.StatusCode.OK and candidates:
            assert replies[0].backend_id in candidates
        assert_serving(fleet, "router")

    candidates: st.SearchStrategy[list[str]] = st.one_of(
        id_lists, st.just([STEADY]), st.just([]), st.just([STEADY, STEADY])
    )
    request_ids = st.one_of(names, names, names, ids)
    run_property("Router/Decide", st.tuples(request_ids, candidates, in_flight_maps()), check, EXAMPLES)


# Decision ids no router issues, though they start with this one's instance:
# digits int() refuses or reads as another id's, sequences never reached.
FOREIGN_SEQUENCES = ["0", "01", "\u00b2", "\u0661", "9" * 5000, "", "+1", " 1", "99999999999", str(2**64 + 1)]
latencies = st.one_of(weird_floats, st.floats(0, 1e4), st.sampled_from([0.7, 33.3, 45.6, 1e9, 1e9 + 1]))
qualities = st.one_of(weird_floats, st.floats(0, 1), st.sampled_from([0.0, 1.0, 1.5, -0.0]))


@st.composite
def outcome_batches(draw: st.DrawFn) -> tuple[list[tuple[str, router_pb2.Outcome]], int]:
    """Outcomes, each with how to find its decision id: "fresh" (a decision
    made for it), "again:<n>" (the n-th fresh one of the batch again),
    "foreign" (one of FOREIGN_SEQUENCES after the instance) or "as_is"."""
    huge = draw(st.sampled_from([0] * 9 + [10_001]))
    drawn: list[tuple[str, router_pb2.Outcome]] = []
    for _ in range(draw(st.integers(0, 10))):
        msg = router_pb2.Outcome()
        kind = draw(st.sampled_from(["fresh", "fresh", "again", "foreign", "as_is"]))
        if kind == "again":
            kind = f"again:{draw(st.integers(0, 3))}"
        elif kind == "foreign":
            msg.decision_id = draw(st.sampled_from(FOREIGN_SEQUENCES))
        elif kind == "as_is":
            msg.decision_id = draw(names)
        for name, values in (("latency_ms", latencies), ("quality", qualities), ("failed", st.booleans())):
            if draw(st.booleans()):
                setattr(msg, name, draw(values))
        drawn.append((kind, msg))
    return drawn, huge


def valid(o: router_pb2.Outcome) -> bool:
    """Whether the router must accept the outcome on a fresh decision."""
    latency = o.latency_ms if o.HasField("latency_ms") else None
    quality = o.quality if o.HasField("quality") else None
    return (
        (latency is not None or quality is not None or o.failed)
        and (latency is None or 0 <= latency <= 1e9)
        and (quality is None or 0 <= quality <= 1)
        and not (o.failed and quality not in (None, 0))
    )


def stored_outcomes(fleet: Fleet) -> tuple[int, int, float]:
    """STEADY's latency and quality counts, and latency sum, in the store."""
    reply = fleet.stub("feature_store").ReadHistory(
        feature_store_pb2.ReadHistoryRequest(backend_ids=[STEADY], include_outcomes=True, skip_points=True), timeout=10
    )
    summaries = [s for batch in reply for s in batch.outcomes]
    return (
        sum(s.latency_count for s in summaries),
        sum(s.quality_count for s in summaries),
        sum(s.latency_sum_ms for s in summaries),
    )


def test_report_outcomes(fleet: Fleet) -> None:
    """Every outcome gets a receipt naming its field; the valid ones on fresh
    decisions are accepted; and every accepted latency and quality reaches
    the feature store's history, through the router's summaries (a bad value
    accepted would get its whole bucket refused there)."""
    router = fleet.stub("router")
    recorded: dict[str, dict[str, float]] = {}  # decision id -> the values the router holds for it
    # Accepted values of decisions that rested on telemetry: the ones summed
    # and forwarded.
    placed = {"latency": 0, "quality": 0, "latency_sum": 0.0}
    before = stored_outcomes(fleet)
    as_of: dict[str, float] = {}

    def check(drawn: tuple[list[tuple[str, router_pb2.Outcome]], int]) -> None:
        batch, huge = drawn
        fresh: list[str] = []
        outcomes: list[router_pb2.Outcome] = []
        for kind, msg in batch:
            o = router_pb2.Outcome()
            o.CopyFrom(msg)
            if kind == "fresh" or (kind.startswith("again:") and not fresh):
                decision = router.Decide(router_pb2.DecideRequest(candidates=[STEADY]), timeout=10)
                fresh.append(decision.decision_id)
                as_of[decision.decision_id] = to_seconds(decision.as_of)
                o.decision_id = decision.decision_id
            elif kind.startswith("again:"):
                o.decision_id = fresh[int(kind.removeprefix("again:")) % len(fresh)]
            elif kind == "foreign":
                instance = fresh[0].rpartition("-")[0] if fresh else "x"
                o.decision_id = f"{instance}-{msg.decision_id}"
            outcomes.append(o)
        outcomes += [router_pb2.Outcome(decision_id="x", latency_ms=1.0)] * huge
        replies: list[router_pb2.ReportOutcomesResponse] = []
        request = router_pb2.ReportOutcomesRequest(outcomes=outcomes)
        code = outcome(lambda: replies.append(router.ReportOutcomes(request, timeout=10)), "outcomes:")
        if request.ByteSize() > MIB:
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, code
        elif huge:
            assert code == grpc.StatusCode.INVALID_ARGUMENT, code
        else:
            assert code == grpc.StatusCode.OK, code
            receipts = replies[0].receipts
            assert [r.index for r in receipts] == list(range(len(outcomes)))
            seen: set[str] = set()
            for i, (o, r) in enumerate(zip(outcomes, receipts, strict=True)):
                if r.status == router_pb2.ACCEPTED:
                    held = recorded.setdefault(o.decision_id, {})
                    values = {"latency": o.latency_ms if o.HasField("latency_ms") else None}
                    values["quality"] = 0.0 if o.failed else (o.quality if o.HasField("quality") else None)
                    for name, value in values.items():
                        if value is not None and name not in held:
                            held[name] = value
                            if as_of.get(o.decision_id, 0.0) > 0:
                                placed[name] += 1
                                placed["latency_sum"] += value if name == "latency" else 0.0
                else:
                    assert r.status in (router_pb2.REJECTED, router_pb2.DUPLICATE), r
                    assert r.reason.startswith(f"outcomes[{i}].") and ": " in r.reason, r.reason
                if o.decision_id in fresh and o.decision_id not in seen and valid(o):
                    assert r.status == router_pb2.ACCEPTED, (o, r)
                seen.add(o.decision_id)
        shadow = router.GetPolicyShadow(router_pb2.GetPolicyShadowRequest(), timeout=5)
        assert 0 <= shadow.p_value <= 1 and shadow.compared <= shadow.pairs
        assert_serving(fleet, "router")

    run_property("Router/ReportOutcomes", outcome_batches(), check, EXAMPLES)
    assert placed["latency"] and placed["quality"]
    # The router forwards every --outcome-flush-s; wait (bounded) until it has.
    want = (before[0] + placed["latency"], before[1] + placed["quality"])
    deadline = time.monotonic() + 30
    while (got := stored_outcomes(fleet))[:2] != want and time.monotonic() < deadline:
        time.sleep(0.1)
    assert got[:2] == want
    assert math.isclose(got[2], before[2] + placed["latency_sum"], rel_tol=1e-9)


def test_router_reads(fleet: Fleet) -> None:
    channel = fleet.channels["router"]

    def check(raw: bytes) -> None:
        for method in ("GetRoutingTable", "GetRiskReport", "GetPolicyShadow"):
            call = channel.unary_unary(f"/ace.v1.Router/{method}")
            outcome(functools.partial(call, raw, timeout=10))
        watch = channel.unary_stream("/ace.v1.Router/WatchRoutingTable")(raw, timeout=10)
        outcome(lambda: next(watch))
        watch.cancel()
        assert_serving(fleet, "router")

    run_property(
        "Router/GetRoutingTable+GetRiskReport+GetPolicyShadow+WatchRoutingTable",
        st.binary(max_size=256),
        check,
        EXAMPLES,
    )


# --- the trainer --------------------------------------------------------------


@st.composite
def train_requests(draw: st.DrawFn) -> trainer_pb2.TrainRequest:
    """Hostile values everywhere; the sizes that are valid stay small, so a
    request that trains at all trains for a fraction of a second."""
    msg = trainer_pb2.TrainRequest(
        publish=draw(st.booleans()),
        n_estimators=draw(st.sampled_from([1, 2, 10**6, 2**32 - 1])),
        max_depth=draw(st.sampled_from([1, 3, 10**6])),
        horizon_s=draw(st.one_of(weird_floats, st.floats(1, 600))),
        threshold_ms=draw(st.one_of(weird_floats, st.floats(1, 1000))),
        seed=draw(st.integers(0, 2**32 - 1)),
    )
    source = draw(st.sampled_from(["synthetic", "csv", "feature_store", "none"]))
    if source == "synthetic":
        msg.synthetic.seed = draw(st.integers(0, 2**32 - 1))
        msg.synthetic.backends = draw(st.sampled_from([1, 2, 10**6]))
        msg.synthetic.duration_s = draw(
            st.one_of(weird_floats.filter(lambda f: not 0 <= f <= 10**6), st.floats(10, 900))
        )
        msg.synthetic.interval_s = draw(st.one_of(weird_floats.filter(lambda f: not 0 <= f < 5), st.floats(5, 60)))
    elif source == "csv":
        msg.csv_path = draw(
            st.one_of(
                ids,
                st.sampled_from(
                    ["/nonexistent.csv", "/dev/null", "/etc/hostname", ".", "../../../../etc/hostname", "history"]
                ),
            )
        )
    elif source == "feature_store":
        msg.feature_store.duration_s = draw(weird_floats)
    return msg


def test_train(fleet: Fleet) -> None:
    stub = fleet.stub("trainer")

    def check(request: trainer_pb2.TrainRequest) -> None:
        outcome(lambda: list(stub.Train(request, timeout=60, metadata=ADMIN_CALL)))
        assert_serving(fleet, "trainer")
        outcome(lambda: stub.GetStatus(trainer_pb2.GetStatusRequest(), timeout=5))
        assert fleet.stub("predictor").Predict(predictor_pb2.PredictRequest(), timeout=5) is not None

    run_property("Trainer/Train", train_requests(), check, 40)


# --- bytes that are no message ------------------------------------------------

METHODS = [
    ("feature_store", "/ace.v1.FeatureStore/Ingest"),
    ("feature_store", "/ace.v1.FeatureStore/GetFeatures"),
    ("feature_store", "/ace.v1.FeatureStore/ReadHistory"),
    ("feature_store", "/ace.v1.FeatureStore/IngestOutcomes"),
    ("predictor", "/ace.v1.Predictor/Predict"),
    ("learning", "/ace.v1.Predictor/Predict"),
    ("predictor", "/ace.v1.Predictor/Rollback"),
    ("router", "/ace.v1.Router/Decide"),
    ("router", "/ace.v1.Router/ReportOutcomes"),
    ("trainer", "/ace.v1.Trainer/GetStatus"),
    ("trainer", "/ace.v1.Trainer/Train"),
]
STREAMED = [
    ("feature_store", "/ace.v1.FeatureStore/IngestStream"),
    ("predictor", "/ace.v1.Predictor/PublishModel"),
]


@pytest.mark.parametrize(("service", "method"), METHODS)
def test_raw_bytes(fleet: Fleet, service: str, method: str) -> None:
    channel = fleet.channels[service]
    streaming = method.endswith(("ReadHistory", "Train"))

    def check(raw: bytes) -> None:
        if streaming:
            outcome(lambda: list(channel.unary_stream(method)(raw, timeout=10, metadata=ADMIN_CALL)))
        else:
            outcome(lambda: channel.unary_unary(method)(raw, timeout=10, metadata=ADMIN_CALL))
        assert_serving(fleet, service)

    label = " with the learning loop" if service == "learning" else ""
    run_property(f"{method.removeprefix('/ace.v1.')}{label} (raw bytes)", st.binary(max_size=512), check, 30)


@pytest.mark.parametrize(("service", "method"), STREAMED)
def test_raw_byte_streams(fleet: Fleet, service: str, method: str) -> None:
    channel = fleet.channels[service]

    def check(raws: list[bytes]) -> None:
        outcome(lambda: channel.stream_unary(method)(iter(raws), timeout=10, metadata=ADMIN_CALL))
        assert_serving(fleet, service)

    run_property(
        f"{method.removeprefix('/ace.v1.')} (raw bytes)", st.lists(st.binary(max_size=256), max_size=6), check, 30
    )
