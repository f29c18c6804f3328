"""TLS on the wire: real servers on port 0 with a throwaway CA, and the
flags that configure it."""

from __future__ import annotations

import datetime
import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ace.v1 import feature_store_pb2, feature_store_pb2_grpc, router_pb2, router_pb2_grpc, telemetry_pb2
from services.common import tls
from services.common.timeutil import set_timestamp
from services.feature_store import config as fs_config
from services.feature_store import server as fs_server
from services.router import config as rt_config
from services.router import server as rt_server


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    other_ca: Path  # a CA that signed nothing here


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _ca("ace test CA")
    _, other = _ca("someone else's CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Pki(root / "ca.pem", root / "server.pem", root / "server.key", root / "other-ca.pem")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.other_ca.write_bytes(other.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(_pem_key(key))
    return paths


def tls_flags(pki: Pki) -> list[str]:
    return ["--tls-cert-file", str(pki.cert), "--tls-key-file", str(pki.key), "--tls-ca-file", str(pki.ca)]


def point(backend_id: str, t: float) -> telemetry_pb2.TelemetryPoint:
    p = telemetry_pb2.TelemetryPoint(backend_id=backend_id, load=10, latency_ms=80, error_rate=0)
    set_timestamp(p.observed_at, t)
    return p


def test_data_calls_run_over_tls_and_a_service_calls_its_dependencies_over_tls(pki: Pki) -> None:
    store = fs_server.start(fs_config.load(["--host", "127.0.0.1", "--port", "0", *tls_flags(pki)]))
    router = rt_server.start(
        rt_config.load(
            [
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--feature-store-addr",
                f"localhost:{store.port}",
                "--predictor-addr",
                "localhost:1",  # nothing there: the router falls back to observed latency
                *tls_flags(pki),
            ]
        )
    )
    trusted = tls.Tls(ca=pki.ca.read_bytes())
    try:
        with tls.channel(f"localhost:{store.port}", trusted) as channel:
            stub = feature_store_pb2_grpc.FeatureStoreStub(channel)
            answer = stub.Ingest(
                feature_store_pb2.IngestRequest(points=[point("a", 1_800_000_000 + 10 * i) for i in range(6)])
            )
            assert answer.accepted == 6
        # The router learnt of "a" through its own TLS watch on the store.
        with tls.channel(f"localhost:{router.port}", trusted) as channel:
            rstub = router_pb2_grpc.RouterStub(channel)
            deadline = time.monotonic() + 10
            while not rstub.GetRoutingTable(router_pb2.GetRoutingTableRequest(), timeout=5).backends:
                assert time.monotonic() < deadline, "the router never saw the store's backend"
                time.sleep(0.05)
            decision = rstub.Decide(router_pb2.DecideRequest(candidates=["a"]), timeout=5)
            assert decision.backend_id == "a"
            assert decision.basis == router_pb2.OBSERVED_LATENCY
    finally:
        router.stop(0)
        store.stop(0)


def test_plaintext_and_untrusted_callers_are_refused(pki: Pki) -> None:
    store = fs_server.start(fs_config.load(["--host", "127.0.0.1", "--port", "0", *tls_flags(pki)]))
    try:
        request = feature_store_pb2.GetFeaturesRequest()
        for channel in (
            grpc.insecure_channel(f"localhost:{store.port}"),
            tls.channel(f"localhost:{store.port}", tls.Tls(ca=pki.other_ca.read_bytes())),
        ):
            with channel, pytest.raises(grpc.RpcError) as caught:
                feature_store_pb2_grpc.FeatureStoreStub(channel).GetFeatures(request, timeout=2)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        store.stop(0)


def test_tls_flags_are_checked_at_start(pki: Pki, tmp_path: Path) -> None:
    with pytest.raises(tls.TlsError, match="--tls-cert-file and --tls-key-file: give both or neither"):
        tls.load(str(pki.cert), "", "")
    with pytest.raises(tls.TlsError, match="--tls-ca-file: cannot read"):
        tls.load("", "", str(tmp_path / "missing.pem"))
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(tls.TlsError, match=r"--tls-key-file: .* holds no PEM block"):
        tls.load(str(pki.cert), str(not_pem), "")
    assert tls.load("", "", "") == tls.PLAINTEXT


def test_a_service_refuses_to_start_on_a_bad_tls_flag(pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        fs_config.load(["--tls-cert-file", str(pki.cert)])
    assert "give both or neither" in capsys.readouterr().err
