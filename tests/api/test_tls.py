"""HTTPS with a certificate made here, checked by a client that verifies it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from pointsman.auth import KeyBook
from pointsman.project import Project
from tests.conftest import IRIS_COLUMNS, Server, free_port, register_iris

ROW = dict(zip(IRIS_COLUMNS, [5.1, 3.5, 1.4, 0.2], strict=True))


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """SQLite only: TLS is uvicorn's, whatever the store."""
    return f"sqlite:///{tmp_path / 'pointsman.db'}"


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signs for 127.0.0.1: (ca.pem, cert.pem, key.pem)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pointsman test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_https_only_with_a_verified_certificate_and_plain_http_redirected(
    project: Project, iris_files: tuple[Path, Path], tmp_path: Path
) -> None:
    project.routes.deploy("iris", register_iris(project, iris_files), "t")
    key, _ = KeyBook(project.engine).create("app", ["predict:iris"], "t")
    ca, cert, private = make_certificates(tmp_path)
    plain = free_port()
    args = ["--tls-cert", str(cert), "--tls-key", str(private), "--tls-redirect-port", str(plain)]
    server = Server(project.settings.project_path(), args=args, ca=ca)
    try:
        verified = ssl.create_default_context(cafile=ca)
        with httpx.Client(base_url=server.url, verify=verified, timeout=10) as client:
            r = client.post(
                "/v1/models/iris/predict",
                json={"rows": [ROW]},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200 and r.json()["predictions"] == [0]
        # A client that does not trust our CA refuses the server.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(server.url + "/healthz", timeout=5)
        # Plain HTTP to the TLS port gets no answer; on the redirect port, a 308 to HTTPS.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
        r = httpx.get(f"http://127.0.0.1:{plain}/v1/models?x=1", timeout=5)
        assert r.status_code == 308
        assert r.headers["location"] == f"https://127.0.0.1:{server.port}/v1/models?x=1"
    finally:
        server.stop()
