"""Certificates: the self-signed convenience, key normalisation and identity."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sim.errors import ConformanceInputError
from sim.server.launch import substitute
from sim.server.tls import certificate_identity, load_certificates, self_signed, server_key_pkcs8


def test_self_signed_chain_verifies_for_its_names(tmp_path: Path) -> None:
    creds = self_signed(tmp_path / "tls", ["127.0.0.1", "webhook.example.svc"], tmp_path / "ca.pem")
    assert creds.ca == tmp_path / "ca.pem"
    leaf = load_certificates(creds.cert)[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "webhook.example.svc" in san.get_values_for_type(x509.DNSName)
    assert (creds.key.stat().st_mode & 0o777) == 0o600
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(creds.cert, creds.key)  # the pair loads
    ca = load_certificates(creds.ca)[0]
    leaf.verify_directly_issued_by(ca)


def test_self_signed_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ConformanceInputError):
        self_signed(tmp_path, [], tmp_path / "ca.pem")


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
def test_keys_are_normalised_to_pkcs8(tmp_path: Path, fmt: serialization.PrivateFormat) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    cert = tmp_path / "tls.crt"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    key = serialization.load_pem_private_key(issued.private_key_pem.bytes(), None)
    key_path = tmp_path / "tls.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    out = server_key_pkcs8(cert, key_path, tmp_path / "work")
    assert out.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (out == key_path) == (fmt == serialization.PrivateFormat.PKCS8)


def test_key_of_another_certificate_is_named(tmp_path: Path) -> None:
    issued = trustme.CA().issue_cert("127.0.0.1")
    cert = tmp_path / "tls.crt"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    other = tmp_path / "other.key"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(ConformanceInputError, match="does not belong"):
        server_key_pkcs8(cert, other, tmp_path / "work")


def test_unreadable_and_non_pem_files_are_named(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConformanceInputError, match=r"junk\.pem"):
        load_certificates(junk)
    with pytest.raises(ConformanceInputError, match=r"missing\.key"):
        server_key_pkcs8(junk, tmp_path / "missing.key", tmp_path)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    encrypted = tmp_path / "enc.key"
    encrypted.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    with pytest.raises(ConformanceInputError, match=r"enc\.key"):
        server_key_pkcs8(junk, encrypted, tmp_path)


def test_identity_has_subject_and_fingerprint(tmp_path: Path) -> None:
    creds = self_signed(tmp_path, ["127.0.0.1"], tmp_path / "ca.pem")
    ident = certificate_identity(load_certificates(creds.cert)[0])
    assert ident["subject"] == "CN=127.0.0.1"
    assert ident["issuer"] == "CN=peerpods-conformance webhook test CA"
    assert len(bytes.fromhex(ident["sha256"].replace(":", ""))) == 32


def test_launch_placeholders_are_substituted() -> None:
    args = ["run", "--webhook-url", "@WEBHOOK_URL@", "--webhook-ca=@WEBHOOK_CA@"]
    assert substitute(args, "https://h:1/p", Path("/c.pem")) == [
        "run",
        "--webhook-url",
        "https://h:1/p",
        "--webhook-ca=/c.pem",
    ]
