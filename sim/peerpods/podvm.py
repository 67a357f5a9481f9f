"""What the pod VM does with its user data: the reference the real s390x guest agent must match.

:func:`process_user_data` plays CAA's ``process-user-data`` against a directory standing in
for the guest's ``/`` and returns a :class:`GuestReport`; the real guest agent prints the
same JSON (:meth:`GuestReport.to_json`), so the two can be compared field by field.

The rules, in order:

1. Parse the cloud-config strictly (:func:`sim.peerpods.cloudconfig.parse_user_data`). Empty user data
   means "no write_files" (a VM started without any).
2. Apply ``write_files`` whose path is, as written, one of the six CAA knows
   (:data:`WRITE_FILES_ALLOWED`; CAA v0.22.0 ``pkg/userdata/provision.go``, ``WriteFilesList``
   and ``isAllowed``). Any other path -- ``/etc/...``, ``/run/peerpod/other``,
   ``/run/peerpod/../x`` -- is skipped and never written; like CAA, skipping is not an
   error. Skipped paths are absent from ``written``, which is the evidence.
3. If ``/run/peerpod/initdata`` was not delivered, write the dummy (:data:`DUMMY_ENCODED`,
   a fixed string so every implementation writes the same bytes) and set ``dummy``.
4. Decode and validate it completely before writing anything from it: a bad initdata
   leaves no ``aa.toml``/``cdh.toml``/``policy.rego``/digest behind and the reason goes to
   ``error``.
5. Write each ``[data]`` entry whose name, joined to ``/run/peerpod`` and normalised as Go's
   ``filepath.Join`` does, is one of :data:`ALLOWED_FILES`; every other key (``../../etc/x``
   included) is listed in ``ignored`` and written nowhere.
6. Write ``/run/peerpod/initdata.digest``: the hex digest of the decoded TOML bytes.

Every target path is resolved and checked to stay inside ``root`` before it is opened, so
a symlink planted under ``root`` cannot redirect a write elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import posixpath
from dataclasses import dataclass, field
from typing import Any

from sim.errors import ConformanceInputError
from sim.peerpods import initdata as initdata_mod
from sim.peerpods.cloudconfig import INITDATA_PATH, WriteFile, parse_user_data

__all__ = [
    "ALLOWED_FILES",
    "DIGEST_PATH",
    "PEERPOD_DIR",
    "WRITE_FILES_ALLOWED",
    "GuestReport",
    "GuestReportError",
    "process_user_data",
]

PEERPOD_DIR = "/run/peerpod"
ALLOWED_FILES = ("aa.toml", "cdh.toml", "policy.rego")
DIGEST_PATH = f"{PEERPOD_DIR}/initdata.digest"
_ALLOWED_PATHS = frozenset(f"{PEERPOD_DIR}/{name}" for name in ALLOWED_FILES)
#: The write_files paths the pod VM writes, compared as written (not normalised), as CAA does.
WRITE_FILES_ALLOWED = frozenset(
    f"{PEERPOD_DIR}/{name}"
    for name in ("aa.toml", "cdh.toml", "apf.json", "auth.json", "initdata", "scratch-space.marker")
)
_REPORT_KEYS = ("arch", "machine", "algorithm", "digest", "dummy", "written", "ignored", "error")


class GuestReportError(ConformanceInputError):
    """A guest report that does not have the agreed JSON shape; the message names the field."""


@dataclass
class GuestReport:
    """What one pod VM did with its user data; the JSON form is shared with the guest agent."""

    arch: str
    machine: str | None
    algorithm: str
    digest: str
    dummy: bool
    written: dict[str, str] = field(default_factory=dict)  # absolute path -> sha256 of the bytes
    ignored: list[str] = field(default_factory=list)  # initdata [data] keys not written
    error: str | None = None

    def to_json(self) -> str:
        """Keys in the agreed order, ``written`` sorted by path, ``ignored`` sorted."""
        body = {
            "arch": self.arch,
            "machine": self.machine,
            "algorithm": self.algorithm,
            "digest": self.digest,
            "dummy": self.dummy,
            "written": dict(sorted(self.written.items())),
            "ignored": sorted(self.ignored),
            "error": self.error,
        }
        return json.dumps(body)

    @classmethod
    def from_json(cls, text: str) -> GuestReport:
        """Parse and type-check a report printed by any implementation."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise GuestReportError(f"guest report is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise GuestReportError("guest report must be a JSON object")
        if set(raw) != set(_REPORT_KEYS):
            missing = sorted(set(_REPORT_KEYS) - set(raw))
            extra = sorted(set(raw) - set(_REPORT_KEYS))
            raise GuestReportError(f"guest report keys differ: missing {missing}, unexpected {extra}")
        return cls(**{key: _checked(key, raw[key]) for key in _REPORT_KEYS})


def _checked(key: str, value: Any) -> Any:
    """Type-check one report field."""
    ok = {
        "arch": isinstance(value, str),
        "machine": value is None or isinstance(value, str),
        "algorithm": isinstance(value, str),
        "digest": isinstance(value, str),
        "dummy": isinstance(value, bool),
        "written": isinstance(value, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()),
        "ignored": isinstance(value, list) and all(isinstance(item, str) for item in value),
        "error": value is None or isinstance(value, str),
    }[key]
    if not ok:
        raise GuestReportError(f"guest report field {key!r} has the wrong type: {value!r}")
    return value


class _Guest:
    """The guest filesystem under ``root``, writing only where the rules allow."""

    def __init__(self, root: pathlib.Path) -> None:
        self.root = root.resolve()
        self.written: dict[str, str] = {}

    def _check_inside(self, guest_path: str, directory: pathlib.Path) -> None:
        """Refuse a directory that resolves (through symlinks) outside the guest root."""
        if not directory.resolve().is_relative_to(self.root):
            raise ConformanceInputError(f"refusing to write {guest_path}: it would leave the guest root")

    def write(self, guest_path: str, content: bytes) -> None:
        """Write one file at an absolute guest path, refusing anything that leaves root."""
        target = self.root / guest_path.lstrip("/")
        self._check_inside(guest_path, target.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._check_inside(guest_path, target.parent)
        resolved = target.parent.resolve() / target.name
        if resolved.is_symlink():
            raise ConformanceInputError(f"refusing to write {guest_path}: it is a symlink in the guest root")
        resolved.write_bytes(content)
        resolved.chmod(0o644)
        self.written[guest_path] = hashlib.sha256(content).hexdigest()


def _apply_write_files(guest: _Guest, files: list[WriteFile]) -> str | None:
    """Write the allowed entries; returns the initdata content if it was delivered."""
    delivered: str | None = None
    for entry in files:
        if entry.path not in WRITE_FILES_ALLOWED:
            continue
        guest.write(entry.path, entry.content.encode())
        if entry.path == INITDATA_PATH:
            delivered = entry.content
    return delivered


def _apply_initdata(guest: _Guest, report: GuestReport, encoded: str) -> None:
    """Decode, validate, then write the allow-listed files and the digest."""
    toml_bytes = initdata_mod.decode(encoded)
    document = initdata_mod.parse(toml_bytes, source=INITDATA_PATH)
    hex_digest = initdata_mod.digest(toml_bytes, document.algorithm)
    for key, content in document.data.items():
        # Go's filepath.Join: the key is appended whatever it starts with ("/aa.toml" ->
        # /run/peerpod/aa.toml), then cleaned; Python's join would restart at an absolute key.
        path = posixpath.normpath(f"{PEERPOD_DIR}/{key}")
        if path in _ALLOWED_PATHS:
            guest.write(path, content.encode())
        else:
            report.ignored.append(key)
    guest.write(DIGEST_PATH, hex_digest.encode())
    report.algorithm = document.algorithm
    report.digest = hex_digest


def process_user_data(
    user_data: str, root: pathlib.Path, *, arch: str = "s390x", machine: str | None = None
) -> GuestReport:
    """Process user data as the pod VM does, under ``root``; errors go into ``report.error``."""
    guest = _Guest(root)
    report = GuestReport(arch=arch, machine=machine, algorithm="", digest="", dummy=False)
    report.written = guest.written
    try:
        files = parse_user_data(user_data) if user_data.strip() else []
        encoded = _apply_write_files(guest, files)
        if encoded is None:
            report.dummy = True
            encoded = initdata_mod.DUMMY_ENCODED
            guest.write(INITDATA_PATH, encoded.encode())
        _apply_initdata(guest, report, encoded)
    except (ConformanceInputError, OSError) as exc:
        report.error = str(exc)
    except (ValueError, RecursionError, MemoryError) as exc:  # any other decode failure, as the agent
        report.error = f"user data could not be decoded: {type(exc).__name__}: {str(exc)[:200]}"
    return report
