from __future__ import annotations

import dataclasses
import hashlib

import grpc
import pytest

from ace.v1 import predictor_pb2, predictor_pb2_grpc
from services.trainer import publish
from services.trainer.job import PublishOutcome
from services.trainer.train import HistorySource, Provenance, TrainedModel
from tests.fakes import ADMIN_CALL
from tests.ports import free_port


def test_requests_send_the_metadata_then_chunks_of_at_most_chunk_size(default_model: TrainedModel):
    metadata = publish.metadata_of(default_model)
    sent = list(publish.requests(metadata, b"x" * 10, chunk_size=4))
    assert [r.WhichOneof("part") for r in sent] == ["metadata", "chunk", "chunk", "chunk"]
    assert [len(r.chunk) for r in sent[1:]] == [4, 4, 2]


def test_metadata_carries_the_model(default_model: TrainedModel):
    metadata = publish.metadata_of(default_model)
    assert metadata.version == default_model.version
    assert metadata.sha256 == default_model.sha256
    assert metadata.size_bytes == default_model.size_bytes
    assert list(metadata.feature_names) == list(default_model.feature_names)
    assert len(metadata.reference_inputs) == len(metadata.reference_outputs) * len(metadata.feature_names)
    assert list(metadata.reference_inputs[: len(metadata.feature_names)]) == default_model.reference_inputs[0].tolist()
    assert metadata.trained_at.seconds == int(default_model.trained_at)
    assert dict(metadata.metrics) == default_model.metrics.as_map()
    assert dict(metadata.feature_importances) == default_model.feature_importances
    assert not metadata.stage_only


def test_publish_streams_the_exact_bytes(fake_predictor, default_model: TrainedModel):
    fake, port = fake_predictor
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        outcome = publish.publish(
            channel,
            publish.metadata_of(default_model),
            default_model.onnx_bytes,
            chunk_size=100_000,
            timeout_s=10,
            call_metadata=ADMIN_CALL,
        )
    assert outcome == PublishOutcome(published=True)
    (got,) = fake.received
    assert got.onnx_bytes == default_model.onnx_bytes
    assert hashlib.sha256(got.onnx_bytes).hexdigest() == got.metadata.sha256
    assert max(got.chunk_sizes) == 100_000
    assert len(got.chunk_sizes) == -(-default_model.size_bytes // 100_000)


def test_a_refused_model_is_an_outcome_not_an_exception(fake_predictor, default_model: TrainedModel):
    fake, port = fake_predictor
    metadata = publish.metadata_of(default_model)
    metadata.sha256 = "0" * 64
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = predictor_pb2_grpc.PredictorStub(channel)
        outcome = publish.publish(stub, metadata, default_model.onnx_bytes, timeout_s=10, call_metadata=ADMIN_CALL)
    assert not outcome.published
    assert outcome.error.startswith("INVALID_ARGUMENT: sha256")
    assert fake.received == []


def test_an_unreachable_predictor_is_an_outcome(default_model: TrainedModel):
    with grpc.insecure_channel(f"127.0.0.1:{free_port()}") as channel:
        outcome = publish.publish(channel, publish.metadata_of(default_model), default_model.onnx_bytes, timeout_s=10)
    assert not outcome.published
    assert outcome.error.startswith("UNAVAILABLE")


def test_chunk_size_above_the_contract_is_refused(default_model: TrainedModel):
    with grpc.insecure_channel("127.0.0.1:1") as channel, pytest.raises(ValueError, match="chunk_size"):
        publish.publish(channel, publish.metadata_of(default_model), b"", chunk_size=(1 << 20) + 1)


def test_a_publish_without_the_admin_token_is_refused(fake_predictor, default_model: TrainedModel):
    fake, port = fake_predictor
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        outcome = publish.publish(channel, publish.metadata_of(default_model), default_model.onnx_bytes, timeout_s=10)
    assert not outcome.published
    assert outcome.error.startswith("UNAUTHENTICATED")
    assert fake.received == []


def test_metadata_says_what_history_the_model_learnt_from(default_model: TrainedModel):
    assert publish.metadata_of(default_model).history_source == predictor_pb2.HISTORY_SOURCE_UNSPECIFIED
    fleet = dataclasses.replace(default_model, provenance=Provenance(HistorySource.FLEET, 1000.0, 8200.0))
    metadata = publish.metadata_of(fleet, shadow=True)
    assert metadata.history_source == predictor_pb2.HISTORY_SOURCE_FLEET
    assert (metadata.history_start_at.seconds, metadata.history_end_at.seconds) == (1000, 8200)
