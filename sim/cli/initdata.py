"""``peerpods-conformance initdata``: encode, decode and digest initdata as the pod VM does.

``decode`` applies the pod VM's checks (strict base64, bounded gunzip, TOML, algorithm,
version, [data]) so a user learns about a broken annotation before a pod VM refuses it;
``digest`` gives the value an attestation policy (IBM SE ``se.user_data``) should pin.
"""

from __future__ import annotations

import argparse
import os
import sys

from sim import initdata
from sim.cli.mutate import read_source

__all__ = ["register"]


def _label(source: str) -> str:
    return "stdin" if source == "-" else source


def _encode(args: argparse.Namespace) -> int:
    print(initdata.encode(read_source(args.file, what="initdata TOML file")))
    return 0


def _encoded_text(source: str) -> str:
    """STRING, FILE or '-': an existing file wins over reading the argument as the string."""
    if source == "-" or os.path.isfile(source):
        raw = read_source(source, what="initdata file")
        try:
            return raw.decode("ascii").strip()
        except UnicodeDecodeError as exc:
            raise initdata.InitdataError(f"{_label(source)}: encoded initdata must be ASCII base64") from exc
    return source.strip()


def _decode(args: argparse.Namespace) -> int:
    toml_bytes = initdata.decode(_encoded_text(args.source))
    initdata.parse(toml_bytes, source="decoded initdata")
    sys.stdout.buffer.write(toml_bytes)
    if not toml_bytes.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()
    return 0


def _digest(args: argparse.Namespace) -> int:
    """Digest of the file's exact bytes; with --algorithm the document is not validated."""
    toml_bytes = read_source(args.file, what="initdata TOML file")
    if args.algorithm is None:
        initdata.parse(toml_bytes, source=_label(args.file))
    print(initdata.digest(toml_bytes, args.algorithm))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``initdata encode|decode|digest``."""
    parser = subparsers.add_parser("initdata", help="encode, decode and digest initdata", description=__doc__)
    commands = parser.add_subparsers(dest="initdata_command", metavar="ACTION", required=True)

    encode = commands.add_parser("encode", help="gzip + base64 a TOML file into one line")
    encode.add_argument("file", metavar="FILE", help="initdata TOML, or '-' for stdin")
    encode.set_defaults(func=_encode)

    decode = commands.add_parser("decode", help="decode and validate encoded initdata; print the TOML")
    decode.add_argument("source", metavar="STRING|FILE", help="the encoded string, a file holding it, or '-'")
    decode.set_defaults(func=_decode)

    digest = commands.add_parser("digest", help="hex digest of a TOML file with its own algorithm")
    digest.add_argument("file", metavar="FILE", help="initdata TOML, or '-' for stdin")
    digest.add_argument(
        "--algorithm",
        choices=initdata.ALGORITHMS,
        help="override the document's algorithm (skips validation)",
    )
    digest.set_defaults(func=_digest)
