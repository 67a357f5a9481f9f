"""Small facts about files that several parts of the suite need, and the one way to open input.

Every file the suite reads because a user named it must be a regular file (or standard
input, which the callers handle): a FIFO would block the read for ever, a directory or
``/dev/zero`` would be read as nonsense. :func:`open_regular` opens without blocking
(``O_NONBLOCK``: opening a FIFO for reading otherwise waits for a writer), looks at what it
opened, and refuses anything else naming the path and its kind.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from sim.errors import ConformanceInputError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a ``st_mode`` describes, for messages: 'a regular file', 'a directory', ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def non_regular_kind(path: str | Path) -> str | None:
    """The kind of an existing ``path`` that is not a regular file (None: regular, or absent)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) else file_kind(mode)


def open_regular(path: str | Path, *, name: str) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file; else refuse, naming it (``name``) and its kind.

    Never blocks: a FIFO is opened non-blocking, seen to be a FIFO, and closed.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except IsADirectoryError:
        raise ConformanceInputError(f"{name}: is a directory, not a regular file") from None
    except OSError as exc:
        raise ConformanceInputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ConformanceInputError(f"{name}: is {file_kind(mode)}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: str | Path, *, name: str) -> bytes:
    """All bytes of a regular file (for small files only: certificates, keys)."""
    with open_regular(path, name=name) as handle:
        return handle.read()


def sha256_file(path: Path) -> str:
    """The file's SHA-256 hex digest, read in chunks by the standard library."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
