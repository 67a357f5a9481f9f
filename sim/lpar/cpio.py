"""A minimal writer for the Linux initramfs format (cpio "newc"), deterministic by design.

The image's cache key promises that the same inputs give the same initramfs, so every
entry gets a fixed owner, fixed times and a sorted order; the ``cpio`` tool would copy the
build directory's times and order instead.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"
S_IFDIR = 0o040000
S_IFREG = 0o100000
S_IFLNK = 0o120000


@dataclass(frozen=True)
class Entry:
    """One member: a directory, a regular file or a symlink (data is the link target)."""

    name: str
    mode: int
    data: bytes = b""


def _pad(length: int) -> bytes:
    return b"\0" * ((4 - length % 4) % 4)


def _header(inode: int, entry: Entry) -> bytes:
    name = entry.name.encode() + b"\0"
    fields = (inode, entry.mode, 0, 0, 1, 0, len(entry.data), 0, 0, 0, 0, len(name), 0)
    head = _MAGIC + b"".join(b"%08X" % value for value in fields)
    return head + name + _pad(len(head) + len(name))


def write_newc(entries: list[Entry]) -> bytes:
    """The archive bytes; parents must be listed before their children."""
    out = io.BytesIO()
    for inode, entry in enumerate(entries, start=1):
        out.write(_header(inode, entry))
        out.write(entry.data)
        out.write(_pad(len(entry.data)))
    out.write(_header(0, Entry(_TRAILER, 0)))
    return out.getvalue()


def gzip_newc(entries: list[Entry]) -> bytes:
    """The archive gzip-compressed with a zero timestamp (the kernel's RD_GZIP reads it)."""
    return gzip.compress(write_newc(entries), compresslevel=6, mtime=0)


def tree_entries(root: Path, prefix: str = "") -> list[Entry]:
    """Entries for everything under ``root`` in sorted order (directories before contents)."""
    entries: list[Entry] = []
    for path in sorted(root.rglob("*")):
        name = prefix + path.relative_to(root).as_posix()
        if path.is_symlink():
            entries.append(Entry(name, S_IFLNK | 0o777, str(path.readlink()).encode()))
        elif path.is_dir():
            entries.append(Entry(name, S_IFDIR | 0o755))
        else:
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            entries.append(Entry(name, S_IFREG | mode, path.read_bytes()))
    return entries
