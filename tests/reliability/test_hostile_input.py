"""Hostile input, every RPC of every service: hypothesis generates arbitrary
and malformed messages (huge batches and strings, NaN and infinities,
timestamps at and past the extremes, empty and duplicate ids, truncated,
oversized and reordered model streams, raw bytes that are no message at all)
and sends them to the real servers on port 0. Every call gets a clear status
(never INTERNAL or UNKNOWN), the server stays SERVING, and valid points sent
alongside bad ones are kept. Examples are derandomized and bounded so that
`make test` stays fast; tests/reliability/conftest.py prints the cases tried
per RPC."""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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
from services.common.features import FEATURE_NAMES, SCHEMA_VERSION
from services.common.serving import RunningServer
from services.common.timeutil import to_timestamp
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

MIB = 1024 * 1024
CLEAR_FAILURES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
BASE_TIME = 1_767_225_600.0  # 2026-01-01
EXAMPLES = 60
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
    servers["router"] = rt_server.start(
        rt_config.load(
            [
                *("--host", "127.0.0.1", "--port", "0", "--max-streams", "4"),
                *("--feature-store-addr", addr["feature_store"], "--predictor-addr", addr["predictor"]),
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
    fleet.stub("predictor").PublishModel(iter(models.publish_requests(meta, onnx)), timeout=30, metadata=ADMIN_CALL)
    yield fleet
    for channel in channels.values():
        channel.close()
    for running in servers.values():
        running.stop(0)


def outcome(call: Callable[[], object]) -> grpc.StatusCode:
    """Runs one call; fails the test on INTERNAL or UNKNOWN."""
    try:
        call()
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        assert code not in CLEAR_FAILURES, f"{code.name}: {exc.details()}"
    else:
        code = grpc.StatusCode.OK
    STATUSES[_current[0]][code.name] += 1
    return code


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
ids = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "a", "a b", "../../etc/passwd", "\x00", "é", "x" * 129, "x" * 100_000]),
    st.just(HUGE_STRING),
)
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
        msg = feature_store_pb2.ReadHistoryRequest(last_s=draw(weird_floats), backend_ids=draw(id_lists))
        for field in ("start_time", "end_time"):
            if draw(st.booleans()):
                getattr(msg, field).CopyFrom(draw(timestamps()))
        return msg

    def check(request: feature_store_pb2.ReadHistoryRequest) -> None:
        outcome(lambda: list(stub.ReadHistory(request, timeout=10)))
        assert_serving(fleet, "feature_store")

    run_property("FeatureStore/ReadHistory", requests(), check, EXAMPLES)


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
        for method in ("GetActiveModel", "ListModels"):
            call = channel.unary_unary(f"/ace.v1.Predictor/{method}")
            outcome(functools.partial(call, raw, timeout=10))
        assert_serving(fleet, "predictor")

    run_property("Predictor/GetActiveModel+ListModels", st.binary(max_size=256), check, EXAMPLES)


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


def test_decide(fleet: Fleet) -> None:
    stub = fleet.stub("router")

    def check(drawn: tuple[str, list[str]]) -> None:
        request_id, candidates = drawn
        outcome(lambda: stub.Decide(router_pb2.DecideRequest(request_id=request_id, candidates=candidates), timeout=10))
        assert_serving(fleet, "router")

    run_property("Router/Decide", st.tuples(ids, id_lists), check, EXAMPLES)


def test_router_reads(fleet: Fleet) -> None:
    channel = fleet.channels["router"]

    def check(raw: bytes) -> None:
        for method in ("GetRoutingTable", "GetRiskReport"):
            call = channel.unary_unary(f"/ace.v1.Router/{method}")
            outcome(functools.partial(call, raw, timeout=10))
        watch = channel.unary_stream("/ace.v1.Router/WatchRoutingTable")(raw, timeout=10)
        outcome(lambda: next(watch))
        watch.cancel()
        assert_serving(fleet, "router")

    run_property("Router/GetRoutingTable+GetRiskReport+WatchRoutingTable", st.binary(max_size=256), check, EXAMPLES)


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
    ("predictor", "/ace.v1.Predictor/Predict"),
    ("predictor", "/ace.v1.Predictor/Rollback"),
    ("router", "/ace.v1.Router/Decide"),
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

    run_property(f"{method.removeprefix('/ace.v1.')} (raw bytes)", st.binary(max_size=512), check, 30)


@pytest.mark.parametrize(("service", "method"), STREAMED)
def test_raw_byte_streams(fleet: Fleet, service: str, method: str) -> None:
    channel = fleet.channels[service]

    def check(raws: list[bytes]) -> None:
        outcome(lambda: channel.stream_unary(method)(iter(raws), timeout=10, metadata=ADMIN_CALL))
        assert_serving(fleet, service)

    run_property(
        f"{method.removeprefix('/ace.v1.')} (raw bytes)", st.lists(st.binary(max_size=256), max_size=6), check, 30
    )
