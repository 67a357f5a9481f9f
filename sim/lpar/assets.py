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
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ConformanceInputError
from sim.files import sha256_file
from sim.paths import AGENT_DIR

#: The agent's source (see sim.paths).
AGENT_SOURCE = AGENT_DIR
MANIFEST = "manifest.json"
PREPARE_HINT = "run `peerpods-conformance lpar prepare` (or .ci/setup-lpar-host)"
#: The pod VM kernels `lpar prepare --kernel` builds images with; the first is preferred.
KERNELS = ("minimal", "debian")
#: Selects the kernel of the pod VM image a run boots (default: minimal if prepared, else debian).
KERNEL_ENV = "PEERPODS_KERNEL"


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
    #: "minimal" (built by `lpar prepare`, see sim.lpar.kernel) or "debian" (Debian's s390x kernel).
    flavour: str = "debian"


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
        flavour=str(data["kernel"].get("flavour", "debian")),
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


def kernel_choice(kernel: str | None = None) -> str | None:
    """``kernel``, else $PEERPODS_KERNEL, else None (prefer minimal); an unknown name is refused."""
    chosen = kernel if kernel is not None else (os.environ.get(KERNEL_ENV) or "").strip() or None
    if chosen is not None and chosen not in KERNELS:
        source = "kernel" if kernel is not None else f"${KERNEL_ENV}"
        raise ConformanceInputError(
            f"{source}={chosen!r} is not a pod VM kernel (known: {', '.join(KERNELS)})"
        )
    return chosen


def find_assets(cache: Path | None = None, *, key: str | None = None, kernel: str | None = None) -> Assets:
    """The verified build for the current agent source (or exactly ``key``).

    ``kernel`` (or $PEERPODS_KERNEL) picks the image's kernel; unset, the minimal kernel's
    image is preferred and Debian's is the fallback (what `lpar prepare` falls back to)."""
    cache = cache or default_cache_dir()
    want_agent = agent_source_digest()
    wanted = kernel_choice(kernel)
    candidates = sorted(cache.glob(f"assets-*/{MANIFEST}"), key=lambda p: p.stat().st_mtime, reverse=True)
    current: dict[str, Assets] = {}
    for manifest in candidates:
        try:
            assets, agent_digest = read_manifest(manifest.parent)
        except (OSError, ValueError, KeyError, AttributeError):
            continue
        if key is not None and assets.key == key:
            verify(assets)
            return assets
        if key is None and agent_digest == want_agent:
            current.setdefault(assets.flavour, assets)
    for flavour in (wanted,) if wanted else KERNELS:
        if flavour in current:
            verify(current[flavour])
            return current[flavour]
    if wanted and current:
        raise AssetsMissing(
            f"no pod VM image with the {wanted} kernel in {cache} (there is: {', '.join(sorted(current))}); "
            f"run `peerpods-conformance lpar prepare --kernel {wanted}`"
        )
    if candidates:
        raise AssetsMissing(
            f"no pod VM image in {cache} was built from the current podvm-agent source; {PREPARE_HINT}"
        )
    raise AssetsMissing(f"no pod VM image in {cache}; {PREPARE_HINT}")


def publish_build(out: Path, target: Path, manifest: Mapping[str, Any]) -> None:
    """Write a finished build's manifest into ``out`` and move it to its cache entry ``target``
    (a damaged entry of the same key is replaced): the entry appears whole or not at all."""
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if target.exists():
        shutil.rmtree(target)
    out.rename(target)
