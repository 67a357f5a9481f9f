"""The report directory: checked before a run, locked during it, swapped in after it.

* An unusable ``--report-dir`` (empty, a file, under a file, unwritable, ``/proc``) is bad
  input, found before any scenario runs.
* A lock (``.peerpods-conformance.lock`` in the directory, held with ``flock`` for the
  whole run, released by the kernel if the process dies) refuses a second run into the same
  directory, naming the holder: its run id, pid, host and start.
* The run writes into a fresh hidden directory inside it; only when every result file is
  complete are the previous run's files removed and the new ones moved in. An interrupted
  or refused run leaves the previous run's files as they were, complete and matching each
  other; files from two runs never sit side by side. Other files in the directory (another
  job's reports) are left alone.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sim.errors import ConformanceInputError
from sim.harness.report.bundle import BUNDLE

LOCK_NAME = ".peerpods-conformance.lock"
STAGING_PREFIX = ".run-"
#: The result files of a run (SHA256SUMS last: it lists the others).
RESULT_FILES = ("junit.xml", "cucumber.json", "summary.json", "report.html", "SHA256SUMS")
#: Every file a run publishes, in the order they are moved into place: the result files and the
#: bundle that holds them (with the console log and the target's logs).
PUBLISHED = (*RESULT_FILES, BUNDLE)


def check_report_dir(text: str) -> Path:
    """The report directory as a Path, or ConformanceInputError naming why it cannot be used."""
    if not text.strip():
        raise ConformanceInputError("--report-dir is empty: give a directory to write the reports into")
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ConformanceInputError(f"--report-dir {text}: is a file, not a directory")
    ancestor = path
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConformanceInputError(f"--report-dir {text}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConformanceInputError(f"--report-dir {text}: {ancestor} is not writable")
    return path


@dataclass
class ReportDir:
    """One run's hold on a report directory: the lock, the staging directory, the final swap."""

    path: Path
    run_id: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    staging: Path = field(init=False)
    _lock: IO[str] | None = field(default=None, init=False)
    _created: bool = field(default=False, init=False)
    published: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.staging = self.path / f"{STAGING_PREFIX}{self.run_id}"

    def open(self) -> ReportDir:
        """Create, lock and stage; ConformanceInputError when it cannot (nothing is left behind)."""
        self._created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            handle = (self.path / LOCK_NAME).open("a+", encoding="utf-8")
        except OSError as exc:
            self._undo_create()
            raise ConformanceInputError(f"--report-dir {self.path}: cannot write there: {exc}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise ConformanceInputError(
                f"--report-dir {self.path}: another run is writing there ({_describe(holder)}); "
                "wait for it or choose another --report-dir"
            ) from exc
        self._lock = handle
        handle.seek(0)
        handle.truncate()
        handle.write(
            json.dumps(
                {
                    "run_id": self.run_id,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "started": self.started.isoformat(timespec="seconds"),
                }
            )
            + "\n"
        )
        handle.flush()
        for stale in self.path.glob(f"{STAGING_PREFIX}*"):  # left by a run that was killed
            shutil.rmtree(stale, ignore_errors=True)
        try:
            self.staging.mkdir()
        except OSError as exc:
            self.close()
            raise ConformanceInputError(f"--report-dir {self.path}: cannot write there: {exc}") from exc
        return self

    def _undo_create(self) -> None:
        if self._created:
            shutil.rmtree(self.path, ignore_errors=True)

    def publish(self) -> None:
        """Replace the previous run's result files by this run's, all of them, or none.

        The previous files are first moved aside (renames in one file system, which need no
        room); if moving the new ones in fails, they are moved back.
        """
        aside = self.staging / ".previous"
        aside.mkdir()
        previous = [name for name in PUBLISHED if (self.path / name).exists()]
        moved: list[str] = []
        try:
            for name in previous:
                (self.path / name).replace(aside / name)
            for name in PUBLISHED:
                staged = self.staging / name
                if staged.exists():
                    staged.replace(self.path / name)
                    moved.append(name)
        except OSError:
            for name in moved:
                (self.path / name).unlink(missing_ok=True)
            for name in previous:
                if (aside / name).exists():
                    (aside / name).replace(self.path / name)
            raise
        self.published = True

    def close(self) -> None:
        """Drop the staging directory and the lock; a directory this run created and never filled goes too."""
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if not self.published and self._created:
            self._undo_create()


def _describe(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"run {info['run_id']}, pid {info['pid']} on host {info['host']}, started {info['started']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"
