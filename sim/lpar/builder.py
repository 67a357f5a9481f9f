"""``lpar prepare``: build the s390x pod VM image from Debian packages and the agent source.

Debian's archive gives the s390x kernel and busybox (``apt-get download``); Go (1.21 or later:
/usr/local/go's when present, else the one on PATH) builds the agent in module mode, its two
libraries pinned by ``podvm-agent/go.mod`` and verified by ``go.sum``, fetched through the Go
module proxy once into the module cache. The build is keyed (see :mod:`assets`), so a
second run with nothing changed reuses the cache, and a changed agent source or package
version builds a fresh directory next to the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sim.errors import ConformanceInputError
from sim.files import sha256_file
from sim.lpar import cpio
from sim.lpar.assets import (
    AGENT_SOURCE,
    MANIFEST,
    Assets,
    AssetsMissing,
    agent_source_digest,
    default_cache_dir,
    read_manifest,
    verify,
)

ARCH = "s390x"
KERNEL_META = "linux-image-s390x"
BUSYBOX = "busybox-static"
#: Built as modules by Debian's s390x kernel; loaded by the agent in this order.
MODULES = ("virtio_blk", "cdrom", "isofs")
CMDLINE = "console=ttysclp0 quiet panic=-1"
FORMAT = 1  # bump when the image layout changes, so old caches are not reused
#: Preferred over the ``go`` on PATH (Debian 12's golang-go is 1.19; go.mod needs 1.21).
LOCAL_GO = Path("/usr/local/go/bin/go")

Log = Callable[[str], None]


class BuildError(ConformanceInputError):
    """The image cannot be built on this machine; the message says what to install or run."""


@dataclass(frozen=True)
class Plan:
    """What an image would be built from, and hence its cache key."""

    packages: dict[str, str]
    go_version: str
    agent_sha256: str

    @property
    def key(self) -> str:
        material = json.dumps(
            {
                "format": FORMAT,
                "packages": self.packages,
                "go": self.go_version,
                "agent": self.agent_sha256,
                "modules": MODULES,
                "cmdline": CMDLINE,
            },
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:16]


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise BuildError(f"{argv[0]} is not installed; run .ci/setup-lpar-host") from None
    if done.returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return done.stdout


def ensure_foreign_arch(log: Log) -> None:
    """dpkg must know s390x for apt to fetch s390x packages; add it when root, else say how."""
    if ARCH in _run(["dpkg", "--print-foreign-architectures"]).split():
        return
    if os.geteuid() != 0:
        raise BuildError(
            "dpkg has no s390x architecture; as root run: dpkg --add-architecture s390x && apt-get update"
        )
    log("adding dpkg architecture s390x and updating the package lists")
    _run(["dpkg", "--add-architecture", ARCH])
    _run(["apt-get", "update"])


def _candidate(package: str) -> tuple[str, str]:
    """(version, Depends line) apt would install for ``package``."""
    text = _run(["apt-cache", "show", "--no-all-versions", package])
    version = re.search(r"^Version: (\S+)", text, re.M)
    if version is None:
        raise BuildError(f"apt knows no version of {package}; run apt-get update")
    depends = re.search(r"^Depends: (.+)$", text, re.M)
    return version.group(1), depends.group(1) if depends else ""


def plan() -> Plan:
    """Resolve the exact packages (the kernel meta-package names the real kernel)."""
    _, depends = _candidate(f"{KERNEL_META}:{ARCH}")
    match = re.search(r"(linux-image-[0-9][^\s,(]*-s390x)", depends)
    if match is None:
        raise BuildError(f"cannot tell which kernel {KERNEL_META}:{ARCH} depends on ({depends!r})")
    kernel = match.group(1)
    packages = {kernel: _candidate(f"{kernel}:{ARCH}")[0], BUSYBOX: _candidate(f"{BUSYBOX}:{ARCH}")[0]}
    go_version = _run([go_binary(), "version"]).strip()
    return Plan(packages=packages, go_version=go_version, agent_sha256=agent_source_digest())


def go_binary() -> str:
    """The Go toolchain to build the agent with: /usr/local/go's if present, else ``go`` on PATH."""
    if LOCAL_GO.is_file():
        return str(LOCAL_GO)
    found = shutil.which("go")
    if found is None:
        raise BuildError("no Go toolchain: install Go 1.21 or later (/usr/local/go or on PATH)")
    return found


def _download(packages: dict[str, str], debs: Path, log: Log) -> dict[str, Path]:
    """The .deb files of the s390x packages, fetched once into ``debs``."""
    debs.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for name, version in packages.items():
        plain = version.split(":", 1)[-1]
        existing = sorted(debs.glob(f"{name}_*{plain}_{ARCH}.deb"))
        if not existing:
            log(f"apt-get download {name}:{ARCH}={version}")
            _run(
                ["apt-get", "download", "-o", "APT::Sandbox::User=root", f"{name}:{ARCH}={version}"],
                cwd=debs,
            )
            existing = sorted(debs.glob(f"{name}_*{plain}_{ARCH}.deb"))
        if not existing:
            raise BuildError(f"apt-get download left no .deb for {name} {version} in {debs}")
        found[name] = existing[0]
    return found


def build_agent(output: Path, gocache: Path) -> None:
    """Compile the agent for s390x, statically, reproducibly, in module mode (go.mod, go.sum)."""
    env = dict(os.environ)
    env.update(
        GO111MODULE="on",
        GOFLAGS="-mod=readonly",  # go.sum decides; a module that does not match it fails the build
        GOTOOLCHAIN="local",
        GOCACHE=str(gocache),
        CGO_ENABLED="0",
        GOOS="linux",
        GOARCH=ARCH,
    )
    _run(
        [go_binary(), "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", str(output), "."],
        cwd=AGENT_SOURCE,
        env=env,
    )


def _initramfs(root: Path, kernel_release: str, agent: Path) -> bytes:
    """busybox (for debugging: boot with rdinit=/bin/sh), the modules, and the agent as /init."""
    module_dir = root / "lib/modules" / kernel_release
    builtin = (module_dir / "modules.builtin").read_text()
    entries = [
        cpio.Entry(name, cpio.S_IFDIR | 0o755)
        for name in ("bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc", "run", "sys", "tmp")
    ]
    entries.append(cpio.Entry("bin/busybox", cpio.S_IFREG | 0o755, (root / "bin/busybox").read_bytes()))
    entries.append(cpio.Entry("bin/sh", cpio.S_IFLNK | 0o777, b"busybox"))
    loaded: list[str] = []
    for module in MODULES:
        if f"/{module}.ko" in builtin:
            continue
        matches = sorted(module_dir.glob(f"kernel/**/{module}.ko"))
        if not matches:
            raise BuildError(f"kernel {kernel_release} has no module {module}")
        loaded.append(f"{module}.ko")
        entries.append(cpio.Entry(f"lib/modules/{module}.ko", cpio.S_IFREG | 0o644, matches[0].read_bytes()))
    # Modules depend on each other (isofs needs cdrom): the list is in dependency order.
    order = sorted(loaded, key=lambda name: {"cdrom.ko": 0}.get(name, 1))
    entries.append(cpio.Entry("etc/podvm-modules", cpio.S_IFREG | 0o644, ("\n".join(order) + "\n").encode()))
    entries.append(cpio.Entry("init", cpio.S_IFREG | 0o755, agent.read_bytes()))
    entries.sort(key=lambda entry: entry.name)
    return cpio.gzip_newc(entries)


def prepare(cache: Path | None = None, *, log: Log = print, force: bool = False) -> tuple[Assets, bool]:
    """Build (or reuse) the image; returns the verified assets and whether they were reused."""
    cache = (cache or default_cache_dir()).expanduser()
    ensure_foreign_arch(log)
    the_plan = plan()
    target = cache / f"assets-{the_plan.key}"
    if (target / MANIFEST).is_file() and not force:
        assets, _ = read_manifest(target)
        try:
            verify(assets)
        except AssetsMissing as exc:
            log(f"cached image is damaged ({exc}); rebuilding")
        else:
            return assets, True
    cache.mkdir(parents=True, exist_ok=True)
    debs = _download(the_plan.packages, cache / "debs", log)
    with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
        work = Path(tmp)
        root = work / "root"
        for deb in debs.values():
            _run(["dpkg-deb", "-x", str(deb), str(root)])
        kernels = sorted((root / "boot").glob("vmlinuz-*"))
        if not kernels:
            raise BuildError("the kernel package holds no /boot/vmlinuz-*")
        release = kernels[0].name.removeprefix("vmlinuz-")
        log("building the pod VM agent for s390x")
        build_agent(work / "podvm-agent", cache / "go-build")
        out = work / "out"
        out.mkdir()
        shutil.copyfile(kernels[0], out / "vmlinuz")
        (out / "initrd.gz").write_bytes(_initramfs(root, release, work / "podvm-agent"))
        manifest = {
            "key": the_plan.key,
            "kernel": {"file": "vmlinuz", "sha256": sha256_file(out / "vmlinuz"), "release": release},
            "initrd": {"file": "initrd.gz", "sha256": sha256_file(out / "initrd.gz")},
            "cmdline": CMDLINE,
            "packages": the_plan.packages,
            "go": the_plan.go_version,
            "agent_source_sha256": the_plan.agent_sha256,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if target.exists():
            shutil.rmtree(target)
        out.rename(target)
    assets, _ = read_manifest(target)
    verify(assets)
    log(f"pod VM image ready in {target}")
    return assets, False
