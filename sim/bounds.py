"""Every bound the suite puts on input it did not write, in one place, and the reader that applies them.

Each number is listed, with its reason, in the README's "Bounds on bad input". A bound is
checked *before* the expensive step it protects: a file's size before it is parsed, a
quantity's length before it is cached, the gzip member count while inflating.
"""

from __future__ import annotations

import reprlib
import sys
from typing import BinaryIO

from sim.errors import ConformanceInputError
from sim.files import open_regular

__all__ = [
    "MAX_GZIP_INPUT_BYTES",
    "MAX_GZIP_MEMBERS",
    "MAX_INITDATA_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_POD_CONTAINERS",
    "MAX_POD_QUANTITIES",
    "MAX_QUANTITY_CHARS",
    "MAX_REPLY_BYTES",
    "MAX_TOML_DEPTH",
    "MAX_TOML_INTEGER_DIGITS",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "excerpt",
    "read_bounded",
    "read_text_bounded",
    "short",
]

MIB = 1 << 20

#: kube-apiserver refuses a request body over 3 MiB; no manifest, webhook configuration,
#: fixture or LPAR description the suite reads can usefully be larger.
MAX_MANIFEST_BYTES = 3 * MIB

#: Initdata, encoded or decoded (TOML), read from a file or stdin, and the gzip output bound.
MAX_INITDATA_BYTES = 1 * MIB

#: Gzip input: the encoded initdata is at most 1 MiB of base64, so at most 3/4 MiB of gzip.
MAX_GZIP_INPUT_BYTES = MAX_INITDATA_BYTES

#: Concatenated gzip members in one initdata. ``gzip | base64`` writes one; ``cat a.gz b.gz``
#: a few. Empty members cost a header parse each and produce nothing, so without a count
#: a stream of them escapes the output bound.
MAX_GZIP_MEMBERS = 16

#: A webhook endpoint's reply: the same bound as the requests kube-apiserver accepts.
MAX_REPLY_BYTES = 3 * MIB

#: Containers, init containers and ephemeral containers of one pod the webhook handles at
#: most. Kubernetes sets no such limit, but a pod of 3 MiB can hold a million empty
#: containers, and the patch clears each one's resources: 89 MB of answer and 6-17 s of one
#: worker's time for one review (issue 19), past kube-apiserver's 10 s webhook timeout.
#: 10,000 keeps the longest answer under 1 MiB and a review under 0.3 s; real pods have a few.
MAX_POD_CONTAINERS = 10_000

#: Quantities (requests, limits, overhead, size limits... anywhere in the pod) the webhook
#: parses at most per review. A distinct quantity costs about 13 µs to parse as Go does, and
#: a 3 MiB pod can hold 150,000 of them (2-4 s); 20,000 keep a review's parsing under 0.3 s,
#: and a pod at the container bound still has room for a request and a limit per container.
MAX_POD_QUANTITIES = 20_000

#: The longest quantity string accepted. Go's parser has no length limit, but every value a
#: resource.Quantity can hold without rounding (19 integer digits, 9 fractional, a sign and
#: an exponent of at most 11 characters) fits in 41 characters; 128 leaves room for leading
#: zeros and surrounding whitespace, and keeps any cache of parsed quantities small.
MAX_QUANTITY_CHARS = 128

#: TOML tables/arrays nested deeper than this are refused (Python's parser recurses and
#: raises RecursionError around 1,000; real initdata nests three levels).
MAX_TOML_DEPTH = 64

#: TOML integers longer than this many digits are refused: TOML's integers are 64-bit
#: (the spec says so, and the Go agent's parser refuses larger ones), at most 19 digits.
MAX_TOML_INTEGER_DIGITS = 19

#: YAML: anchors and aliases are refused outright; this bounds the number of nodes in one
#: document (a 3 MiB document of one-character scalars has at most ~1.5 million).
MAX_YAML_NODES = 2_000_000

#: YAML collections nested deeper than this are refused (a pod nests about ten levels;
#: libyaml's loader recurses in C, so a 3 MiB ``[[[[...`` must not reach it).
MAX_YAML_DEPTH = 200

#: The longest excerpt of a user's value quoted in an error message.
EXCERPT_CHARS = 80

_REPR = reprlib.Repr()
_REPR.maxstring = EXCERPT_CHARS
_REPR.maxother = EXCERPT_CHARS
_REPR.maxlist = _REPR.maxdict = _REPR.maxtuple = _REPR.maxset = 6
_REPR.maxlevel = 3


def excerpt(value: object) -> str:
    """``repr(value)``, cut down to at most EXCERPT_CHARS (``...``/``…`` mark what was left out)."""
    text = _REPR.repr(value)
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def short(value: object) -> str:
    """A short string as it is (a name, a kind); anything else as a bounded :func:`excerpt`."""
    return value if isinstance(value, str) and len(value) <= EXCERPT_CHARS else excerpt(value)


def read_bounded(source: str, *, what: str, limit: int, flag: str = "") -> bytes:
    """The bytes of FILE (or stdin for ``-``), refusing more than ``limit`` before parsing anything.

    At most ``limit + 1`` bytes are read, so a 50 MB file costs no more than the bound. A
    FILE must be a regular file (sim.files.open_regular): a FIFO, a directory or ``/dev/zero``
    is refused, naming it and its kind, without reading or blocking. ``what`` and ``flag``
    name the input in messages.
    """
    label = "stdin" if source == "-" else source
    name = f"{flag} {label}" if flag else f"{what} {label}"
    try:
        if source == "-":
            data = _read_up_to(sys.stdin.buffer, limit)
        else:
            with open_regular(source, name=name) as handle:
                data = _read_up_to(handle, limit)
    except OSError as exc:
        raise ConformanceInputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ConformanceInputError(
            f"{name}: larger than the {format_size(limit)} bound for a {what}; refused before parsing"
        )
    return data


def _read_up_to(handle: BinaryIO, limit: int) -> bytes:
    chunks = bytearray()
    while len(chunks) <= limit:
        chunk = handle.read(min(1 << 16, limit + 1 - len(chunks)))
        if not chunk:
            break
        chunks += chunk
    return bytes(chunks)


def format_size(size: int) -> str:
    """``3 MiB`` for whole MiB, else the byte count."""
    if size % MIB == 0:
        return f"{size // MIB} MiB"
    if size % 1024 == 0:
        return f"{size // 1024} KiB"
    return f"{size} bytes"


def read_text_bounded(path: object, *, what: str, limit: int = MAX_MANIFEST_BYTES, flag: str = "") -> str:
    """:func:`read_bounded` for a UTF-8 text file (a manifest, a configuration, a fixture)."""
    data = read_bounded(str(path), what=what, limit=limit, flag=flag)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        label = flag or what
        raise ConformanceInputError(
            f"{label} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
