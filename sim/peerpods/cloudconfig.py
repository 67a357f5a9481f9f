"""The cloud-config user data the cloud-api-adaptor hands each pod VM (spec section 5).

CAA emits ``#cloud-config`` with a ``write_files`` list of ``path`` + ``content`` entries
only: ``/run/peerpod/apf.json`` (the tunnel configuration), ``/run/peerpod/auth.json`` when
the pod has image pull secrets, and ``/run/peerpod/initdata`` when initdata was selected.
:func:`build_user_data` writes exactly those keys -- no ``permissions`` -- because the pod
VM's ``process-user-data`` decodes user data strictly into {path, content} and would reject
anything more.

:func:`parse_user_data` is the pod VM side and is equally strict: the header must be there,
the only top-level key is ``write_files``, each entry needs a string ``path`` and may carry
string ``content`` and ``permissions`` (the latter is accepted because plain cloud-init
accepts it, and defaults to ``0644``, the mode process-user-data writes with). Anything else
is refused with a message naming the entry and the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from sim.errors import ConformanceInputError

__all__ = [
    "APF_PATH",
    "AUTH_PATH",
    "HEADER",
    "INITDATA_PATH",
    "CloudConfigError",
    "WriteFile",
    "build_user_data",
    "parse_user_data",
]

HEADER = "#cloud-config"
INITDATA_PATH = "/run/peerpod/initdata"
APF_PATH = "/run/peerpod/apf.json"
AUTH_PATH = "/run/peerpod/auth.json"
DEFAULT_PERMISSIONS = "0644"
_ENTRY_KEYS = frozenset({"path", "content", "permissions"})


class CloudConfigError(ConformanceInputError):
    """User data the pod VM could not process; the message names the entry and key."""


@dataclass(frozen=True)
class WriteFile:
    """One ``write_files`` entry."""

    path: str
    content: str
    permissions: str = DEFAULT_PERMISSIONS


def build_user_data(*, apf_json: str, initdata: str | None, auth_json: str | None = None) -> str:
    """The user data CAA would generate: apf.json, then auth.json and initdata when present."""
    entries: list[dict[str, str]] = [{"path": APF_PATH, "content": apf_json}]
    if auth_json is not None:
        entries.append({"path": AUTH_PATH, "content": auth_json})
    if initdata:
        entries.append({"path": INITDATA_PATH, "content": initdata})
    body = yaml.safe_dump({"write_files": entries}, sort_keys=False, default_flow_style=False, width=1 << 30)
    return f"{HEADER}\n{body}"


def _load(text: str) -> Any:
    """Check the header and parse the YAML body."""
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if first_line.strip() != HEADER:
        raise CloudConfigError(f"user data does not start with {HEADER!r} (first line: {first_line[:60]!r})")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CloudConfigError(f"user data is not valid YAML: {exc}") from exc


def _entry(index: int, raw: object) -> WriteFile:
    """Validate one write_files entry."""
    where = f"user data write_files[{index}]"
    if not isinstance(raw, dict):
        raise CloudConfigError(f"{where}: expected a mapping with 'path' and 'content', got {raw!r}")
    unknown = sorted(str(key) for key in raw if key not in _ENTRY_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_ENTRY_KEYS))
        raise CloudConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {allowed})")
    path = raw.get("path")
    if not isinstance(path, str) or not path:
        raise CloudConfigError(f"{where}: 'path' must be a non-empty string, got {path!r}")
    content = raw.get("content", "")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise CloudConfigError(f"{where} ({path}): 'content' must be a string, got {type(content).__name__}")
    permissions = raw.get("permissions", DEFAULT_PERMISSIONS)
    if not isinstance(permissions, str):
        raise CloudConfigError(f"{where} ({path}): 'permissions' must be a quoted string such as '0644'")
    return WriteFile(path=path, content=content, permissions=permissions)


def parse_user_data(text: str) -> list[WriteFile]:
    """The write_files of a cloud-config document, validated strictly."""
    doc = _load(text)
    if doc is None:
        return []
    if not isinstance(doc, dict):
        raise CloudConfigError(f"user data must be a mapping, got {type(doc).__name__}")
    unknown = sorted(str(key) for key in doc if key != "write_files")
    if unknown:
        raise CloudConfigError(f"user data has unsupported top-level key(s): {', '.join(unknown)}")
    files = doc.get("write_files")
    if files is None:
        return []
    if not isinstance(files, list):
        raise CloudConfigError(f"user data write_files must be a list, got {type(files).__name__}")
    return [_entry(index, raw) for index, raw in enumerate(files)]
