"""Certificates for the HTTPS server: the self-signed convenience and key normalisation.

granian's TLS (rustls) reads PKCS#8 keys only, while ``openssl``, cert-manager and kind
hand out PKCS#1/SEC1 keys too; :func:`server_key_pkcs8` converts rather than making the
user do it. The certificate's subject and SHA-256 fingerprint are what a certification
report names as the endpoint that was tested (:func:`certificate_identity`).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sim.bounds import read_bounded
from sim.errors import ConformanceInputError

#: ``--tls-min-version`` values -> granian's names.
TLS_MIN_VERSIONS: dict[str, str] = {"1.2": "tls1.2", "1.3": "tls1.3"}

_VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class ServerCredentials:
    """Files the server is started with; ``ca`` is None for user-supplied certificates."""

    cert: Path
    key: Path
    ca: Path | None = None


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret readable by the owner only, atomically (a reader never sees half)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def write_public(path: Path, data: bytes) -> None:
    """Write a public file atomically, so a poller never reads a half-written CA.

    A path that cannot be written (``/proc/x.pem``) is refused, naming it, with nothing left behind.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ConformanceInputError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def self_signed(workdir: Path, names: list[str], ca_out: Path) -> ServerCredentials:
    """Make a throw-away CA and a server certificate for ``names``; write the CA to ``ca_out``.

    Both keys are fresh EC P-256 keys that never leave ``workdir`` (the CA key is not even
    written), so the CA is only good for trusting this one server run.
    """
    if not names:
        raise ConformanceInputError("a self-signed certificate needs at least one host name or address")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "peerpods-conformance webhook test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in dict.fromkeys(names)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    workdir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = workdir / "tls.crt", workdir / "tls.key"
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    write_public(ca_out, ca_pem)
    return ServerCredentials(cert=cert_path, key=key_path, ca=ca_out)


#: A certificate chain or key file is refused beyond this size before it is parsed.
MAX_PEM_BYTES = 1 << 20


def _read(path: Path, what: str) -> bytes:
    """A regular file's bytes (a FIFO or a device is refused by kind, never read)."""
    return read_bounded(str(path), what=what, limit=MAX_PEM_BYTES)


def load_certificates(path: Path) -> list[x509.Certificate]:
    """The PEM certificates in ``path`` (leaf first); names the file when there are none."""
    try:
        certs = x509.load_pem_x509_certificates(_read(path, "certificate file"))
    except ValueError as exc:
        raise ConformanceInputError(f"certificate file {path}: not a PEM certificate ({exc})") from None
    return certs


def _load_key(key_path: Path, data: bytes | None = None) -> PrivateKeyTypes:
    if data is None:
        data = _read(key_path, "key file")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConformanceInputError(
            f"key file {key_path}: not an unencrypted PEM private key ({exc})"
        ) from None


def _check_match(leaf: x509.Certificate, key: PrivateKeyTypes, cert_path: Path, key_path: Path) -> None:
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(der, spki) != key.public_key().public_bytes(der, spki):
        raise ConformanceInputError(f"key file {key_path} does not belong to certificate {cert_path}")


def server_key_pkcs8(cert_path: Path, key_path: Path, workdir: Path) -> Path:
    """Check that the key belongs to the certificate; return a PKCS#8 PEM key path for granian.

    A key already in PKCS#8 PEM is used in place; any other unencrypted PEM key is
    converted into ``workdir`` (owner-only permissions).
    """
    data = _read(key_path, "key file")
    key = _load_key(key_path, data)
    _check_match(load_certificates(cert_path)[0], key, cert_path, key_path)
    if b"-----BEGIN PRIVATE KEY-----" in data:
        return key_path
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "tls.pkcs8.key"
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(out, pkcs8)
    return out


def certificate_identity(cert: x509.Certificate) -> dict[str, str]:
    """What a report names about a server certificate: subject, issuer, fingerprint, expiry."""
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "sha256": cert.fingerprint(hashes.SHA256()).hex(":"),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def certificate_identity_der(der: bytes) -> dict[str, str]:
    """:func:`certificate_identity` for the DER bytes a TLS socket hands out."""
    return certificate_identity(x509.load_der_x509_certificate(der))


@dataclass(frozen=True)
class ServingPair:
    """The certificate and PKCS#8 key files granian reads: private copies of the user's files.

    granian's workers read the files named at start-up whenever they (re)start, and panic on
    a missing or half-written one (issue 19: ``mv tls.crt x; kill -HUP`` killed the server).
    Giving granian copies that only :meth:`install` replaces, after checking the new pair,
    makes a SIGHUP with a bad pair harmless: the copies, the old pair, keep serving.
    """

    cert: Path
    key: Path

    @classmethod
    def in_dir(cls, workdir: Path) -> ServingPair:
        return cls(workdir / "serving.crt", workdir / "serving.key")

    def install(self, cert_path: Path, key_path: Path) -> x509.Certificate:
        """Check the pair (both readable, PEM, the key is the certificate's); copy it in.

        Raises :class:`ConformanceInputError` naming the file at fault; the copies are then
        untouched. Returns the new leaf certificate.
        """
        key = _load_key(key_path)
        cert_pem = _read(cert_path, "certificate file")
        try:
            chain = x509.load_pem_x509_certificates(cert_pem)
        except ValueError as exc:
            raise ConformanceInputError(
                f"certificate file {cert_path}: not a PEM certificate ({exc})"
            ) from None
        _check_match(chain[0], key, cert_path, key_path)
        pkcs8 = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.cert.parent.mkdir(parents=True, exist_ok=True)
        # key first: until the certificate is replaced too, a worker starting in between
        # would read a mismatched pair - but workers only restart on the SIGHUP this serves
        _write_private(self.key, pkcs8)
        write_public(self.cert, cert_pem)
        return chain[0]
