"""varpulis.web: plugins, JSON errors, TLS and graceful shutdown of the server handle."""

from __future__ import annotations

import datetime
import threading
from pathlib import Path

import pytest
import requests

from tests.server.conftest import Api
from tests.utils import poll_for
from varpulis.errors import NotFound
from varpulis.web import TlsConfig, json_body, make_app, serve


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 via cryptography, else the openssl CLI."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        import shutil
        import subprocess

        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl CLI is available")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)  # fmt: skip
        return str(cert), str(key)
    import ipaddress

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(private.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(private, hashes.SHA256())
    )  # fmt: skip
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    return str(cert), str(key)


def test_tls_worker(start, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    worker = start(tls_cert=cert, tls_key=key)
    assert worker.url.startswith("https://127.0.0.1:")
    api = Api(worker.url, verify=cert)
    assert api.get("/health").json()["status"] == "healthy"
    pid = api.deploy()
    # A large body and a large response over TLS, on one keep-alive connection.
    events = [{"event_type": "EventA", "fields": {"pad": "x" * 100}}] * 5000
    for _ in range(3):
        body = api.post(f"/api/v1/pipelines/{pid}/events-batch", json={"events": events}).json()
        assert body["accepted"] == 5000 and len(body["output_events"]) == 5000
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(worker.url.replace("https", "http") + "/health", timeout=5)
    assert Api(worker.url, verify=cert).get("/health").status_code == 200


def test_tls_needs_both_files(start, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="together"):
        start(tls_cert=str(tmp_path / "c.pem"))


def test_tls_bad_files_raise(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a cert")
    with pytest.raises(OSError):
        serve(make_app(), tls=TlsConfig(str(tmp_path / "c.pem"), str(tmp_path / "c.pem")))


def test_close_finishes_in_flight_requests() -> None:
    app = make_app()
    entered, release = threading.Event(), threading.Event()

    @app.post("/slow")
    def slow() -> dict:
        entered.set()
        release.wait(10)
        return {"done": json_body()["n"]}

    @app.get("/missing")
    def missing() -> dict:
        raise NotFound("no such thing")

    handle = serve(app, threads=2)
    assert requests.get(handle.url + "/missing", timeout=5).json() == {
        "error": "no such thing", "code": "not_found"}  # fmt: skip
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(
        r=requests.post(handle.url + "/slow", json={"n": 7}, timeout=10)))  # fmt: skip
    t.start()
    assert entered.wait(5)
    closer = threading.Thread(target=handle.close)
    closer.start()
    # The listener goes away at once; the in-flight request still completes.
    poll_for(lambda: _refused(handle.url), timeout=5, what="listener closed")
    release.set()
    t.join(10)
    closer.join(10)
    assert result["r"].json() == {"done": 7}
    assert handle.wait(1)


def _refused(url: str) -> bool:
    try:
        requests.get(url + "/missing", timeout=1)
    except requests.exceptions.ConnectionError:
        return True
    return False


def test_close_with_idle_keepalive_connection() -> None:
    app = make_app()
    app.get("/x")(lambda: {"ok": True})
    handle = serve(app)
    session = requests.Session()
    assert session.get(handle.url + "/x", timeout=5).json() == {"ok": True}
    handle.close(timeout=5)
    assert handle.wait(1)


def test_unexpected_exception_is_json_500(caplog: pytest.LogCaptureFixture) -> None:
    app = make_app()

    @app.get("/boom")
    def boom() -> dict:
        raise RuntimeError("secret detail")

    handle = serve(app)
    try:
        r = requests.get(handle.url + "/boom", timeout=5)
    finally:
        handle.close()
    assert r.status_code == 500
    assert r.json() == {"error": "internal server error", "code": "internal_error"}
    assert "secret detail" in caplog.text
