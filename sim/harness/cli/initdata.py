"""``peerpods-conformance initdata``: encode, decode and digest initdata as the pod VM does.

``decode`` applies the pod VM's checks (strict base64, bounded gunzip, TOML, algorithm,
version, [data]) so a user learns about a broken annotation before a pod VM refuses it;
``digest`` gives the value an attestation policy (IBM SE ``se.user_data``) should pin.
"""

from __future__ import annotations

import argparse
import os
import sys

from sim.bounds import MAX_INITDATA_BYTES
from sim.errors import ConformanceInputError
from sim.files import non_regular_kind
from sim.harness.cli.helptext import plain_doc
from sim.harness.cli.mutate import read_source
from sim.peerpods import initdata

__all__ = ["register"]


def _label(source: str) -> str:
    return "stdin" if source == "-" else source


def _read(source: str, what: str) -> bytes:
    return read_source(source, what=what, limit=MAX_INITDATA_BYTES)


def _encode(args: argparse.Namespace) -> int:
    """Validate as ``decode``/``digest`` do (the pod VM would refuse it otherwise), then encode."""
    toml_bytes = _read(args.file, "initdata TOML file")
    initdata.parse(toml_bytes, source=_label(args.file))
    print(initdata.encode(toml_bytes))
    return 0


def _decoded(source: str) -> bytes:
    """STRING, FILE or '-' decoded exactly as the pod VM decodes (line breaks ignored, nothing stripped).

    An existing file wins over reading the argument as the string; an existing path that is
    no regular file (a directory, a FIFO, ``/dev/zero``) is refused, naming its kind.
    """
    if source != "-" and (kind := non_regular_kind(source)) is not None:
        raise ConformanceInputError(f"initdata file {source}: is {kind}, not a regular file")
    if source == "-" or os.path.isfile(source):
        raw = _read(source, "initdata file")
        try:
            return initdata.decode(raw.decode("utf-8", errors="replace"))
        except initdata.InitdataError as exc:
            raise initdata.InitdataError(f"{_label(source)}: {exc}") from exc
    try:
        return initdata.decode(source)
    except initdata.InitdataError as exc:
        if "/" in source and "." in source:  # probably meant as a file name
            raise initdata.InitdataError(f"{exc} (and there is no file named {source!r})") from exc
        raise


def _check_expected(toml_bytes: bytes, algorithm: str, expected: str | None, label: str) -> None:
    """Compare with a digest the user expects (an attestation policy's value, a document's claim).

    The common mistake is hashing the TOML as shown rather than as delivered (a trailing
    newline more or less), so the message says exactly which bytes the digest covers.
    """
    if expected is None:
        return
    computed = initdata.digest(toml_bytes, algorithm)
    if computed != expected.strip().lower():
        ending = "ends" if toml_bytes.endswith(b"\n") else "does not end"
        raise initdata.InitdataError(
            f"{label}: {algorithm} digest is {computed}, not the expected {expected.strip()}; "
            f"the digest covers the exact {len(toml_bytes)} TOML bytes, which {ending} with a newline"
        )


def _decode(args: argparse.Namespace) -> int:
    """Print the decoded TOML byte for byte, so that piping it to ``digest`` gives the VM's value."""
    toml_bytes = _decoded(args.source)
    document = initdata.parse(toml_bytes, source="decoded initdata")
    _check_expected(toml_bytes, document.algorithm, args.expect, "decoded initdata")
    sys.stdout.buffer.write(toml_bytes)
    sys.stdout.flush()
    return 0


def _digest(args: argparse.Namespace) -> int:
    """Digest of the file's exact bytes; with --algorithm the document is not validated."""
    toml_bytes = _read(args.file, "initdata TOML file")
    algorithm = args.algorithm or initdata.parse(toml_bytes, source=_label(args.file)).algorithm
    _check_expected(toml_bytes, algorithm, args.expect, _label(args.file))
    print(initdata.digest(toml_bytes, algorithm))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``initdata encode|decode|digest``."""
    parser = subparsers.add_parser(
        "initdata", help="encode, decode and digest initdata", description=plain_doc(__doc__)
    )
    commands = parser.add_subparsers(dest="initdata_command", metavar="ACTION", required=True)

    encode = commands.add_parser("encode", help="gzip + base64 a TOML file into one line")
    encode.add_argument("file", metavar="FILE", help="initdata TOML, or '-' for stdin")
    encode.set_defaults(func=_encode)

    decode = commands.add_parser("decode", help="decode and validate encoded initdata; print the TOML")
    decode.add_argument("source", metavar="STRING|FILE", help="the encoded string, a file holding it, or '-'")
    decode.add_argument("--expect", metavar="HEX", help="fail unless the digest of the decoded TOML is HEX")
    decode.set_defaults(func=_decode)

    digest = commands.add_parser("digest", help="hex digest of a TOML file with its own algorithm")
    digest.add_argument("file", metavar="FILE", help="initdata TOML, or '-' for stdin")
    digest.add_argument(
        "--algorithm",
        choices=initdata.ALGORITHMS,
        help="override the document's algorithm (skips validation)",
    )
    digest.add_argument("--expect", metavar="HEX", help="fail unless the digest is HEX")
    digest.set_defaults(func=_digest)
