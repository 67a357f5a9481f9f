"""results.tar.gz: one run's results in one file, to attach to a ticket or a certification.

``peerpods-conformance run`` writes it beside the five result files: those five, the run's
console output (``console.log``, without colour) and every log the run's target collected
(``logs/...``: a control plane's, a server's), under one folder named after the run id.
``peerpods-conformance results PATH`` reads it back (or a report directory), as
``sonobuoy results`` reads a Sonobuoy tarball.

Reading is careful: only regular members named as the bundle names them are read, each
bounded in size, and nothing is ever extracted to disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ConformanceInputError

BUNDLE = "results.tar.gz"
CONSOLE_LOG = "console.log"
#: A member larger than this is refused when read back (summary.json of a full run is ~400 KB).
MAX_MEMBER_BYTES = 64 * 1024 * 1024
#: What ``results`` reads from a report directory (the result files).
READ_FROM_DIR = ("junit.xml", "cucumber.json", "summary.json", "report.html", "SHA256SUMS")


def write_bundle(
    path: Path, run_id: str, files: Mapping[str, Path], logs: Mapping[str, Path], mtime: float
) -> None:
    """Write the bundle: ``files`` at its top folder, ``logs`` under ``logs/``; missing logs are skipped."""
    top = f"peerpods-conformance-{run_id}"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as bundle:
        for name, source in [*files.items(), *((f"logs/{n}", p) for n, p in logs.items())]:
            if not source.is_file():
                continue
            data = source.read_bytes()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size, info.mtime, info.mode = len(data), int(mtime), 0o644
            bundle.addfile(info, io.BytesIO(data))


@dataclass(frozen=True)
class ReadResults:
    """A run's results as read back: its summary, and whether its files match SHA256SUMS."""

    source: Path
    summary: dict[str, Any]
    #: file name -> "ok" / "MISMATCH" / "missing", for each line of SHA256SUMS
    checksums: dict[str, str]
    members: list[str]


def _bounded(name: str, data: bytes | None, where: Path) -> bytes:
    if data is None:
        raise ConformanceInputError(f"{where}: has no {name}")
    return data


def read_results(path: Path) -> ReadResults:
    """Read a results bundle or a report directory; ConformanceInputError names what is wrong."""
    if path.is_dir():
        files = {
            p.name: p.read_bytes()
            for p in path.iterdir()
            if p.is_file()
            and p.name in ("summary.json", "SHA256SUMS", "junit.xml", "cucumber.json", "report.html")
        }
        members = sorted(files)
    elif path.is_file():
        files, members = _read_tar(path)
    else:
        raise ConformanceInputError(
            f"{path}: no such file or directory (give a {BUNDLE} or a report directory)"
        )
    summary_bytes = _bounded("summary.json", files.get("summary.json"), path)
    try:
        summary = json.loads(summary_bytes)
    except ValueError as exc:
        raise ConformanceInputError(f"{path}: summary.json is not JSON: {exc}") from None
    if not isinstance(summary, dict) or "verdict" not in summary or "scenarios" not in summary:
        raise ConformanceInputError(f"{path}: summary.json is not a peerpods-conformance summary")
    return ReadResults(path, summary, _checksums(files), members)


def _read_tar(path: Path) -> tuple[dict[str, bytes], list[str]]:
    files: dict[str, bytes] = {}
    members: list[str] = []
    try:
        with tarfile.open(path, "r:*") as bundle:
            for member in bundle:
                parts = member.name.split("/")
                if not member.isfile() or len(parts) < 2 or ".." in parts or member.name.startswith("/"):
                    continue
                inner = "/".join(parts[1:])
                members.append(inner)
                if "/" in inner or member.size > MAX_MEMBER_BYTES:
                    continue  # logs are listed, not read; nothing oversized is read
                handle = bundle.extractfile(member)
                if handle is not None:
                    files[inner] = handle.read(MAX_MEMBER_BYTES + 1)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ConformanceInputError(f"{path}: not a readable {BUNDLE}: {exc}") from None
    return files, sorted(members)


def _checksums(files: Mapping[str, bytes]) -> dict[str, str]:
    sums = files.get("SHA256SUMS")
    if sums is None:
        return {}
    result: dict[str, str] = {}
    for line in sums.decode("utf-8", "replace").splitlines():
        digest, _, name = line.strip().partition("  ")
        if not name:
            continue
        data = files.get(name)
        if data is None:
            result[name] = "missing"
        else:
            result[name] = "ok" if hashlib.sha256(data).hexdigest() == digest else "MISMATCH"
    return result
