"""The pod VM image's assets in the cache: where they live, whether they are current, intact.

``lpar prepare`` builds a kernel and an initramfs into ``<cache>/assets-<key>/`` with a
manifest of their sha256 sums. The key hashes the agent's source and the Debian package
versions, so a changed agent or a new kernel gives a new directory, and an old one is never
silently reused. At run time the suite only reads: a missing, stale or corrupted asset
is an input error that says to run ``lpar prepare``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from sim.errors import ConformanceInputError
from sim.files import sha256_file
from sim.paths import AGENT_DIR

#: The agent's source (see sim.paths).
AGENT_SOURCE = AGENT_DIR
MANIFEST = "manifest.json"
PREPARE_HINT = "run `peerpods-conformance lpar prepare` (or .ci/setup-lpar-host)"


class AssetsMissing(ConformanceInputError):
    """The pod VM image is not in the cache, is stale, or fails its checksum."""


def default_cache_dir() -> Path:
    """$PEERPODS_CACHE, else ~/.cache/peerpods-conformance/lpar."""
    configured = os.environ.get("PEERPODS_CACHE")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "peerpods-conformance" / "lpar"


def agent_source_digest(source: Path = AGENT_SOURCE) -> str:
    """sha256 over the agent's file names and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(path.relative_to(source).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True)
class Assets:
    """One verified build: the files to boot and what they were built from."""

    directory: Path
    kernel: Path
    initrd: Path
    cmdline: str
    key: str
    kernel_sha256: str
    initrd_sha256: str
    packages: dict[str, str]


def read_manifest(directory: Path) -> tuple[Assets, str]:
    data = json.loads((directory / MANIFEST).read_text())
    assets = Assets(
        directory=directory,
        kernel=directory / data["kernel"]["file"],
        initrd=directory / data["initrd"]["file"],
        cmdline=data["cmdline"],
        key=data["key"],
        kernel_sha256=data["kernel"]["sha256"],
        initrd_sha256=data["initrd"]["sha256"],
        packages=dict(data["packages"]),
    )
    return assets, str(data["agent_source_sha256"])


def verify(assets: Assets) -> None:
    """Raise AssetsMissing unless both files exist and match their recorded sums."""
    for label, path, expected in (
        ("kernel", assets.kernel, assets.kernel_sha256),
        ("initramfs", assets.initrd, assets.initrd_sha256),
    ):
        if not path.is_file():
            raise AssetsMissing(f"pod VM {label} {path} is missing; {PREPARE_HINT}")
        actual = sha256_file(path)
        if actual != expected:
            raise AssetsMissing(
                f"pod VM {label} {path} fails its checksum (sha256 {actual}, manifest says {expected}); "
                f"{PREPARE_HINT}"
            )


def find_assets(cache: Path | None = None, *, key: str | None = None) -> Assets:
    """The verified build for the current agent source (or exactly ``key``)."""
    cache = cache or default_cache_dir()
    want_agent = agent_source_digest()
    candidates = sorted(cache.glob(f"assets-*/{MANIFEST}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for manifest in candidates:
        try:
            assets, agent_digest = read_manifest(manifest.parent)
        except (OSError, ValueError, KeyError):
            continue
        if (key is not None and assets.key == key) or (key is None and agent_digest == want_agent):
            verify(assets)
            return assets
    if candidates:
        raise AssetsMissing(
            f"no pod VM image in {cache} was built from the current podvm-agent source; {PREPARE_HINT}"
        )
    raise AssetsMissing(f"no pod VM image in {cache}; {PREPARE_HINT}")
