"""Initdata: the TOML document that configures a pod VM's guest components (spec section 5).

Transport is gzip then standard base64 on one line (``gzip | base64 -w0``). Decoding is
stricter than "whatever a library accepts" because a conformance suite must catch the
mistakes users actually make (CAA's own documentation carries a string that is one
padding character short):

* base64 must use the standard alphabet with correct ``=`` padding; line breaks are
  ignored, as Go's ``base64.NewDecoder`` ignores them (cloud-config block scalars add one);
* the payload must be gzip (several concatenated members are accepted, as Go's reader
  accepts them);
* the encoded text is at most :data:`sim.bounds.MAX_INITDATA_BYTES` (1 MiB), checked first;
* decompression is **bounded**: :data:`MAX_DECODED_BYTES` (1 MiB). It is streamed through
  ``zlib.decompressobj`` with ``max_length`` so a gzip bomb is refused after producing at
  most one byte past the bound, in bounded memory and time; at most
  :data:`sim.bounds.MAX_GZIP_MEMBERS` members are inflated (empty members produce no
  output, so only a count bounds them), which keeps decoding linear in the input;
* TOML nested deeper than :data:`sim.bounds.MAX_TOML_DEPTH` or holding an integer outside
  TOML's 64-bit range is refused (the Go agent refuses the same documents). Why 1 MiB: initdata reaches
  the VM through a pod annotation (Kubernetes caps all annotations of an object at
  256 KiB together) or cloud-init user data (small on every provider), and real documents
  -- ``aa.toml``, ``cdh.toml`` and a generated ``policy.rego`` -- are tens of KiB; 1 MiB is
  an order of magnitude of headroom while keeping a hostile input cheap to refuse.

Validation (:func:`parse`) follows the pod VM (CAA ``pkg/initdata``, ``process-user-data``):
``algorithm`` must be one of :data:`ALGORITHMS`, ``[data]`` (optional, as in CAA) must map
names to strings, and unknown top-level keys are ignored. Like CAA's ``initdata.Parse``,
``version`` is not checked: it may be missing or name another version (when present it must
be a string, as Go's TOML decoder requires of the field).

The digest is the hex hash, with the document's own algorithm, of the decoded TOML bytes
exactly as delivered -- not of a re-serialisation.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import re
import tomllib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.bounds import MAX_GZIP_MEMBERS, MAX_INITDATA_BYTES, MAX_TOML_DEPTH, excerpt
from sim.errors import ConformanceInputError

__all__ = [
    "ALGORITHMS",
    "ANNOTATION",
    "CM_KEY",
    "DUMMY_ENCODED",
    "DUMMY_TOML",
    "MAX_DECODED_BYTES",
    "VERSIONS",
    "InitdataDocument",
    "InitdataError",
    "decode",
    "digest",
    "encode",
    "parse",
    "select",
]

ANNOTATION = "io.katacontainers.config.hypervisor.cc_init_data"
CM_KEY = "INITDATA"
ALGORITHMS = ("sha256", "sha384", "sha512")
VERSIONS = ("0.1.0",)
MAX_DECODED_BYTES = MAX_INITDATA_BYTES
_INT64 = range(-(1 << 63), 1 << 63)

# What the pod VM writes when it received no initdata: sha256, 0.1.0 and an empty aa.toml,
# byte for byte as upstream's process-user-data generates it (no trailing newline), since
# its digest is what an attestation policy would pin.
DUMMY_TOML = b"algorithm = \"sha256\"\nversion = \"0.1.0\"\n\n[data]\n\"aa.toml\" = '''\n'''"

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}", re.ASCII)
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class InitdataError(ConformanceInputError):
    """Initdata that the pod VM would refuse; the message says which step failed and why."""


@dataclass(frozen=True)
class InitdataDocument:
    """A validated initdata document; ``toml`` keeps the exact bytes the digest covers."""

    algorithm: str
    version: str
    data: dict[str, str]
    toml: bytes


def encode(toml_bytes: bytes) -> str:
    """gzip then standard base64, one line; deterministic (mtime 0) so digests of it are stable."""
    return base64.b64encode(gzip.compress(toml_bytes, compresslevel=9, mtime=0)).decode("ascii")


DUMMY_ENCODED = encode(DUMMY_TOML)


def _first_offence(text: str) -> str:
    """Say what breaks the base64 alphabet or padding rules, and where."""
    for position, char in enumerate(text):
        if char == "=":
            padding = text[position:]
            if padding.strip("=") or len(padding) > 2:
                return f"'=' padding at position {position} is not at the end or is longer than 2"
            break
        if not ("A" <= char <= "Z" or "a" <= char <= "z" or "0" <= char <= "9" or char in "+/"):
            return f"{char!r} at position {position} is not in the standard alphabet"
    return "malformed"  # pragma: no cover - the regex and this scan agree


def _strict_base64(encoded: str) -> bytes:
    """Decode standard base64, refusing bad characters and wrong padding with a precise message."""
    text = encoded.replace("\r", "").replace("\n", "")
    if not text:
        raise InitdataError("initdata is empty")
    if not _BASE64.fullmatch(text):
        raise InitdataError(f"initdata is not standard base64: {_first_offence(text)}")
    short = -len(text) % 4
    if short:
        raise InitdataError(
            f"initdata is not valid base64: length {len(text)} is not a multiple of 4 "
            f"({short} '=' padding character(s) missing?)"
        )
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise InitdataError(f"initdata is not valid base64: {exc}") from exc


def _inflate_member(stream: bytes, budget: int) -> tuple[bytes, bytes]:
    """Inflate one gzip member producing at most ``budget + 1`` bytes; returns (output, rest)."""
    inflater = zlib.decompressobj(_GZIP_WBITS)
    out = bytearray()
    pending = stream
    try:
        while not inflater.eof:
            chunk = inflater.decompress(pending, budget + 1 - len(out))
            out += chunk
            if len(out) > budget:
                return bytes(out), b""
            pending = inflater.unconsumed_tail
            if not chunk and not pending and not inflater.eof:
                raise InitdataError("initdata gzip stream is truncated")
    except zlib.error as exc:
        raise InitdataError(f"initdata is not valid gzip data: {exc}") from exc
    return bytes(out), inflater.unused_data


def _bounded_gunzip(compressed: bytes) -> bytes:
    """gunzip every member, refusing output beyond MAX_DECODED_BYTES and trailing garbage."""
    if not compressed.startswith(_GZIP_MAGIC):
        raise InitdataError(
            f"initdata is not gzip-compressed (starts with {compressed[:2].hex() or 'nothing'}, "
            f"expected 1f8b); encode it with 'gzip | base64 -w0'"
        )
    result = bytearray()
    rest = compressed
    members = 0
    while rest:
        if not rest.startswith(_GZIP_MAGIC):
            raise InitdataError("initdata has trailing data after the gzip stream")
        members += 1
        if members > MAX_GZIP_MEMBERS:
            raise InitdataError(
                f"initdata has more than MAX_GZIP_MEMBERS ({MAX_GZIP_MEMBERS}) gzip members; refused"
            )
        out, rest = _inflate_member(rest, MAX_DECODED_BYTES - len(result))
        result += out
        if len(result) > MAX_DECODED_BYTES:
            raise InitdataError(
                f"decoded initdata exceeds MAX_DECODED_BYTES ({MAX_DECODED_BYTES} bytes); refused"
            )
    return bytes(result)


def decode(encoded: str) -> bytes:
    """base64 (strict) -> bounded gunzip -> the TOML bytes; raises InitdataError."""
    if len(encoded) > MAX_INITDATA_BYTES:
        raise InitdataError(
            f"encoded initdata is {len(encoded):,} characters, over the MAX_INITDATA_BYTES bound "
            f"({MAX_INITDATA_BYTES} bytes); refused before decoding"
        )
    return _bounded_gunzip(_strict_base64(encoded))


def _text_field(doc: Mapping[str, Any], key: str, source: str, allowed: tuple[str, ...]) -> str:
    """A required string field whose value must be one of ``allowed``."""
    if key not in doc:
        raise InitdataError(f"{source}: missing '{key}' (expected one of {', '.join(allowed)})")
    value = doc[key]
    if not isinstance(value, str):
        raise InitdataError(f"{source}: '{key}' must be a string, got {excerpt(value)}")
    if value not in allowed:
        expected = ", ".join(allowed)
        raise InitdataError(f"{source}: unknown {key} {excerpt(value)} (expected one of {expected})")
    return value


def _version(doc: Mapping[str, Any], source: str) -> str:
    """``version`` as the pod VM reads it: not checked, but a string when present."""
    value = doc.get("version", "")
    if not isinstance(value, str):
        raise InitdataError(f"{source}: 'version' must be a string, got {value!r}")
    return value


def _data_table(doc: Mapping[str, Any], source: str) -> dict[str, str]:
    """The [data] table: optional (CAA's field is omitempty) but, when present, names -> strings."""
    data = doc.get("data", {})
    if not isinstance(data, dict):
        raise InitdataError(f"{source}: 'data' must be a table of file name -> content, got {excerpt(data)}")
    for name, content in data.items():
        if not isinstance(content, str):
            kind = type(content).__name__
            raise InitdataError(f"{source}: data.{excerpt(name)} must be a string, got {kind}")
    return dict(data)


def parse(toml_bytes: bytes, *, source: str = "initdata") -> InitdataDocument:
    """Validate decoded initdata as the pod VM does; ``source`` names it in messages."""
    try:
        text = toml_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InitdataError(f"{source}: not UTF-8 text: {exc}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InitdataError(f"{source}: not valid TOML: {exc}") from exc
    except RecursionError:
        raise InitdataError(
            f"{source}: not valid TOML: nested more than MAX_TOML_DEPTH ({MAX_TOML_DEPTH}) levels deep"
        ) from None
    except ValueError as exc:  # an integer too long for Python's int() (over 4,300 digits)
        raise InitdataError(f"{source}: not valid TOML: integer out of the 64-bit range ({exc})") from None
    _check_limits(doc, source)
    return InitdataDocument(
        algorithm=_text_field(doc, "algorithm", source, ALGORITHMS),
        version=_version(doc, source),
        data=_data_table(doc, source),
        toml=toml_bytes,
    )


def _check_limits(doc: dict[str, Any], source: str) -> None:
    """Refuse a table or array more than MAX_TOML_DEPTH levels down (the document is level 0),
    and integers outside TOML's 64-bit range; iteratively, so depth costs no stack."""
    pending: list[tuple[object, int, str]] = [(doc, 0, "")]
    while pending:
        value, depth, where = pending.pop()
        if isinstance(value, dict):
            children: list[tuple[str, object]] = [
                (f"{where}.{key}" if where else key, v) for key, v in value.items()
            ]
        elif isinstance(value, list):
            children = [(f"{where}[{index}]", v) for index, v in enumerate(value)]
        else:
            if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
                raise InitdataError(
                    f"{source}: not valid TOML: {excerpt(where)}: integer out of the 64-bit range"
                )
            continue
        if depth > MAX_TOML_DEPTH:
            raise InitdataError(
                f"{source}: not valid TOML: {excerpt(where)} is nested more than "
                f"MAX_TOML_DEPTH ({MAX_TOML_DEPTH}) levels deep"
            )
        pending.extend((child, depth + 1, path) for path, child in children)


def digest(toml_bytes: bytes, algorithm: str | None = None) -> str:
    """Hex digest of the TOML bytes; ``None`` uses (and validates) the document's own algorithm."""
    if algorithm is None:
        algorithm = parse(toml_bytes).algorithm
    elif algorithm not in ALGORITHMS:
        raise InitdataError(f"unknown algorithm {algorithm!r} (expected one of {', '.join(ALGORITHMS)})")
    return hashlib.new(algorithm, toml_bytes).hexdigest()


def select(pod_annotations: Mapping[str, str] | None, peer_pods_cm: Mapping[str, str] | None) -> str | None:
    """The initdata CAA sends: a non-empty pod annotation, else a non-empty cm INITDATA, else None."""
    from_pod = (pod_annotations or {}).get(ANNOTATION)
    if from_pod:
        return from_pod
    from_cm = (peer_pods_cm or {}).get(CM_KEY)
    return from_cm or None
