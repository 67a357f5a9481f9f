"""Small facts about files that several parts of the suite need."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_file(path: Path) -> str:
    """The file's SHA-256 hex digest, read in chunks by the standard library."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
