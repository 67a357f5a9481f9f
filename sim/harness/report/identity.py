"""Who ran what, where: the identity block of the certificate.

* The suite: its version, and its git commit in a checkout; installed from a wheel, the
  wheel's own SHA-256 as pip recorded it (``direct_url.json``, for a wheel installed from a
  file or URL), and always the SHA-256 of the installed files' RECORD (which lists every
  installed file with its own SHA-256), so that an installation is named exactly.
* The host: its name, operating system, architecture and Python.
* The product under test, from ``--product FILE``: a small YAML file in the spirit of CNCF's
  PRODUCT.yaml for Kubernetes conformance (vendor, product, version, contact; optionally
  website_url, documentation_url, description), checked field by field.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import socket
from importlib import metadata
from pathlib import Path

from sim.bounds import read_text_bounded
from sim.errors import ConformanceInputError
from sim.yamlload import load_one

DISTRIBUTION = "peerpods-conformance"
PRODUCT_REQUIRED = ("vendor", "product", "version", "contact")
PRODUCT_OPTIONAL = ("website_url", "documentation_url", "description")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s/]+\S*$")
MAX_FIELD = 500


def installed_identity() -> dict[str, str]:
    """The installed distribution's digests (empty when it is not installed, e.g. PYTHONPATH)."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return {}
    facts: dict[str, str] = {}
    direct = dist.read_text("direct_url.json")
    if direct:
        try:
            info = json.loads(direct)
        except ValueError:
            info = {}
        if info.get("dir_info", {}).get("editable"):
            return {"installed": "editable, from a checkout"}
        digest = str(info.get("archive_info", {}).get("hashes", {}).get("sha256", ""))
        if not digest:
            digest = str(info.get("archive_info", {}).get("hash", "")).removeprefix("sha256=")
        if digest:
            facts["wheel_sha256"] = digest
    record = dist.read_text("RECORD")
    if record:
        facts["record_sha256"] = hashlib.sha256(record.encode("utf-8")).hexdigest()
    return facts


def os_name() -> str:
    """The distribution's PRETTY_NAME (os-release), else the kernel's name and release."""
    try:
        release = platform.freedesktop_os_release()
        return f"{release.get('PRETTY_NAME') or release.get('NAME', '')} (kernel {platform.release()})"
    except OSError:
        return f"{platform.system()} {platform.release()}"


def host_identity() -> dict[str, str]:
    """Where the suite ran."""
    return {
        "host": socket.gethostname(),
        "os": os_name(),
        "architecture": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def load_product(path: Path) -> dict[str, str]:
    """The product under test, from a PRODUCT.yaml-like file; every bad field is named."""
    where = str(path)
    try:
        raw = load_one(read_text_bounded(path, what="--product file"), source=where)
    except ConformanceInputError as exc:
        raise ConformanceInputError(f"--product {where}: {exc}") from None
    except OSError as exc:
        raise ConformanceInputError(f"--product {where}: cannot read it: {exc.strerror or exc}") from None
    if not isinstance(raw, dict):
        raise ConformanceInputError(
            f"--product {where}: expected a mapping with {', '.join(PRODUCT_REQUIRED)}"
        )
    problems: list[str] = []
    product: dict[str, str] = {}
    for key in sorted(set(map(str, raw)) - set(PRODUCT_REQUIRED) - set(PRODUCT_OPTIONAL)):
        problems.append(f"{key}: unknown field (known: {', '.join(PRODUCT_REQUIRED + PRODUCT_OPTIONAL)})")
    for key in PRODUCT_REQUIRED + PRODUCT_OPTIONAL:
        if key not in raw or raw[key] is None:
            if key in PRODUCT_REQUIRED:
                problems.append(f"{key}: missing")
            continue
        value = raw[key]
        if not isinstance(value, str):
            problems.append(f'{key}: must be a string (quote it: {key}: "{value}")')
            continue
        value = value.strip()
        if not value:
            problems.append(f"{key}: empty")
        elif len(value) > MAX_FIELD:
            problems.append(f"{key}: longer than {MAX_FIELD} characters")
        elif key == "contact" and not (_EMAIL.match(value) or _URL.match(value)):
            problems.append(f"contact: {value!r} is neither an e-mail address nor an http(s) URL")
        elif key.endswith("_url") and not _URL.match(value):
            problems.append(f"{key}: {value!r} is not an http(s) URL")
        else:
            product[key] = value
    if problems:
        raise ConformanceInputError(f"--product {where}:\n  " + "\n  ".join(problems))
    return product
