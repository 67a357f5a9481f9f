"""``lpar prepare``: build the s390x pod VM image from Debian packages and the agent source.

Debian's archive gives the s390x kernel and busybox (``apt-get download``); Go (1.21 or later:
/usr/local/go's when present, else the one on PATH) builds the agent in module mode, its two
libraries pinned by ``podvm-agent/go.mod`` and verified by ``go.sum``, fetched through the Go
module proxy once into the module cache. The build is keyed (see :mod:`assets`), so a
second run with nothing changed reuses the cache, and a changed agent source or package
version builds a fresh directory next to the old one.

The kernel is either the minimal one built from Debian's kernel source (:mod:`kernel`, the
default: everything built in, the initramfs carries no modules) or Debian's generic s390x
kernel with its virtio/iso9660 modules in the initramfs (``--kernel debian``, and the
fallback, with a warning naming the build log, when the minimal kernel cannot be built).
External commands run through plumbum.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from plumbum import local
from plumbum.commands.base import BaseCommand
from plumbum.commands.processes import CommandNotFound

from sim.errors import ConformanceInputError
from sim.files import sha256_file
from sim.lpar import cpio
from sim.lpar.assets import (
    AGENT_SOURCE,
    KERNELS,
    MANIFEST,
    Assets,
    AssetsMissing,
    agent_source_digest,
    default_cache_dir,
    publish_build,
    read_manifest,
    verify,
)
from sim.lpar.kernel import BuiltKernel, KernelBuild, KernelBuildError

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
    #: The minimal kernel's build key (sim.lpar.kernel); None: Debian's kernel and its modules.
    minimal_kernel: str | None = field(default=None)

    @property
    def modules(self) -> tuple[str, ...]:
        """Modules the initramfs carries: none when the kernel has everything built in."""
        return () if self.minimal_kernel else MODULES

    @property
    def key(self) -> str:
        material: dict[str, object] = {
            "format": FORMAT,
            "packages": self.packages,
            "go": self.go_version,
            "agent": self.agent_sha256,
            "modules": self.modules,
            "cmdline": CMDLINE,
        }
        if self.minimal_kernel:
            material["kernel"] = self.minimal_kernel
            material["initramfs"] = "newc"  # uncompressed
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command through plumbum; its stdout, or BuildError with the end of its stderr."""
    try:
        command: BaseCommand = local[argv[0]][argv[1:]]
    except CommandNotFound:
        raise BuildError(f"{argv[0]} is not installed; run .ci/setup-lpar-host") from None
    if cwd is not None:
        command = command.with_cwd(cwd)
    if env is not None:
        command = command.with_env(**env)
    try:
        returncode, stdout, stderr = command.run(retcode=None)
    except FileNotFoundError:
        raise BuildError(f"{argv[0]} is not installed; run .ci/setup-lpar-host") from None
    if returncode != 0:
        raise BuildError(f"{' '.join(argv)} failed ({returncode}): {stderr.strip()[-800:]}")
    return str(stdout)


@contextmanager
def _phase(log: Log, what: str) -> Iterator[None]:
    """Say what is being done, then how long it took."""
    log(what)
    started = time.monotonic()
    yield
    log(f"  {what}: {time.monotonic() - started:.1f} s")


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


def plan(minimal: BuiltKernel | None = None, source: dict[str, str] | None = None) -> Plan:
    """Resolve the exact packages (the kernel meta-package names the real kernel); with a
    ``minimal`` kernel, its source package (``source``) stands where Debian's kernel would."""
    if minimal is None:
        _, depends = _candidate(f"{KERNEL_META}:{ARCH}")
        match = re.search(r"(linux-image-[0-9][^\s,(]*-s390x)", depends)
        if match is None:
            raise BuildError(f"cannot tell which kernel {KERNEL_META}:{ARCH} depends on ({depends!r})")
        kernel = match.group(1)
        packages = {kernel: _candidate(f"{kernel}:{ARCH}")[0]}
    else:
        packages = dict(source or {})
    packages[BUSYBOX] = _candidate(f"{BUSYBOX}:{ARCH}")[0]
    return Plan(
        packages=packages,
        go_version=_run([go_binary(), "version"]).strip(),
        agent_sha256=agent_source_digest(),
        minimal_kernel=minimal.key if minimal else None,
    )


def go_binary() -> str:
    """The Go toolchain to build the agent with: /usr/local/go's if present, else ``go`` on PATH."""
    if LOCAL_GO.is_file():
        return str(LOCAL_GO)
    found = shutil.which("go")
    if found is None:
        raise BuildError("no Go toolchain: install Go 1.21 or later (/usr/local/go or on PATH)")
    return found


def _download(packages: dict[str, str], debs: Path, log: Log, arch: str = ARCH) -> dict[str, Path]:
    """The .deb files of the packages for ``arch`` (s390x unless told), fetched once into ``debs``."""
    debs.mkdir(parents=True, exist_ok=True)
    found: dict[str, Path] = {}
    for name, version in packages.items():
        if name.startswith("linux-source"):
            continue
        plain = version.split(":", 1)[-1]
        existing = sorted(debs.glob(f"{name}_*{plain}_{arch}.deb"))
        if not existing:
            log(f"apt-get download {name}:{arch}={version}")
            _run(
                ["apt-get", "download", "-o", "APT::Sandbox::User=root", f"{name}:{arch}={version}"],
                cwd=debs,
            )
            existing = sorted(debs.glob(f"{name}_*{plain}_{arch}.deb"))
        if not existing:
            raise BuildError(f"apt-get download left no .deb for {name} {version} in {debs}")
        found[name] = existing[0]
    return found


def build_agent(output: Path, gocache: Path, arch: str = ARCH) -> None:
    """Compile the agent for ``arch`` (Go's name: s390x, amd64), statically, reproducibly, in
    module mode (go.mod, go.sum)."""
    env = dict(os.environ)
    env.update(
        GO111MODULE="on",
        GOFLAGS="-mod=readonly",  # go.sum decides; a module that does not match it fails the build
        GOTOOLCHAIN="local",
        GOCACHE=str(gocache),
        CGO_ENABLED="0",
        GOOS="linux",
        GOARCH=arch,
    )
    _run(
        [go_binary(), "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", str(output), "."],
        cwd=AGENT_SOURCE,
        env=env,
    )


def _initramfs(
    root: Path, kernel_release: str, agent: Path, modules: tuple[str, ...] = MODULES, *, compress: bool = True
) -> bytes:
    """busybox (for debugging: boot with rdinit=/bin/sh), the modules, and the agent as /init.

    Uncompressed (``compress=False``) the emulated CPU has nothing to inflate: measured
    0.2-0.5 s less per boot than gzip for the minimal kernel's 5.5 MiB archive."""
    module_dir = root / "lib/modules" / kernel_release
    builtin = (module_dir / "modules.builtin").read_text() if modules else ""
    entries = [
        cpio.Entry(name, cpio.S_IFDIR | 0o755)
        for name in ("bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc", "run", "sys", "tmp")
    ]
    entries.append(cpio.Entry("bin/busybox", cpio.S_IFREG | 0o755, (root / "bin/busybox").read_bytes()))
    entries.append(cpio.Entry("bin/sh", cpio.S_IFLNK | 0o777, b"busybox"))
    loaded: list[str] = []
    for module in modules:
        if f"/{module}.ko" in builtin:
            continue
        matches = sorted(module_dir.glob(f"kernel/**/{module}.ko"))
        if not matches:
            raise BuildError(f"kernel {kernel_release} has no module {module}")
        loaded.append(f"{module}.ko")
        entries.append(cpio.Entry(f"lib/modules/{module}.ko", cpio.S_IFREG | 0o644, matches[0].read_bytes()))
    # Modules depend on each other (isofs needs cdrom): the list is in dependency order.
    order = sorted(loaded, key=lambda name: {"cdrom.ko": 0}.get(name, 1))
    if order:
        entries.append(
            cpio.Entry("etc/podvm-modules", cpio.S_IFREG | 0o644, ("\n".join(order) + "\n").encode())
        )
    entries.append(cpio.Entry("init", cpio.S_IFREG | 0o755, agent.read_bytes()))
    entries.sort(key=lambda entry: entry.name)
    return cpio.gzip_newc(entries) if compress else cpio.write_newc(entries)


def minimal_kernel(
    cache: Path, log: Log, *, force: bool = False, kernel_build: KernelBuild | None = None
) -> tuple[BuiltKernel, dict[str, str]] | None:
    """The minimal kernel (built or reused) and its source package; None, after a warning that
    names the step and the build log, when it cannot be built (Debian's kernel is used)."""
    build = kernel_build or KernelBuild(cache, log=log)
    try:
        source, _ = build.key()
        built = build.ensure(force=force)
    except KernelBuildError as exc:
        log(f"WARNING: {exc}\nWARNING: using Debian's s390x kernel instead (build log: {exc.log_path})")
        return None
    except ConformanceInputError as exc:
        log(f"WARNING: the minimal kernel cannot be built: {exc}")
        log("WARNING: using Debian's s390x kernel instead")
        return None
    return built, {source.package: source.version}


def prepare(
    cache: Path | None = None,
    *,
    log: Log = print,
    force: bool = False,
    kernel: str = "minimal",
    kernel_build: KernelBuild | None = None,
) -> tuple[Assets, bool]:
    """Build (or reuse) the image; returns the verified assets and whether they were reused.

    ``kernel`` is "minimal" (built from Debian's kernel source; Debian's kernel when that
    fails) or "debian". ``force`` rebuilds the image, not the cached minimal kernel."""
    if kernel not in KERNELS:
        raise ConformanceInputError(f"--kernel {kernel!r}: known kernels are {', '.join(KERNELS)}")
    cache = (cache or default_cache_dir()).expanduser()
    ensure_foreign_arch(log)
    minimal: BuiltKernel | None = None
    source: dict[str, str] = {}
    if kernel == "minimal":
        with _phase(log, "minimal kernel"):
            chosen = minimal_kernel(cache, log, kernel_build=kernel_build)
        if chosen is not None:
            minimal, source = chosen
    with _phase(log, "resolving packages"):
        the_plan = plan(minimal, source)
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
    with _phase(log, "downloading packages"):
        debs = _download(the_plan.packages, cache / "debs", log)
    with tempfile.TemporaryDirectory(dir=cache, prefix="build-") as tmp:
        work = Path(tmp)
        root = work / "root"
        for deb in debs.values():
            _run(["dpkg-deb", "-x", str(deb), str(root)])
        if minimal is None:
            kernels = sorted((root / "boot").glob("vmlinuz-*"))
            if not kernels:
                raise BuildError("the kernel package holds no /boot/vmlinuz-*")
            image, release, flavour = kernels[0], kernels[0].name.removeprefix("vmlinuz-"), "debian"
        else:
            image, release, flavour = minimal.image, minimal.release, "minimal"
        with _phase(log, "building the pod VM agent for s390x"):
            build_agent(work / "podvm-agent", cache / "go-build")
        out = work / "out"
        out.mkdir()
        shutil.copyfile(image, out / "vmlinuz")
        with _phase(log, f"writing the initramfs ({flavour} kernel {release})"):
            initrd = "initrd.gz" if minimal is None else "initrd.cpio"
            (out / initrd).write_bytes(
                _initramfs(root, release, work / "podvm-agent", the_plan.modules, compress=minimal is None)
            )
        kernel_facts: dict[str, object] = {
            "file": "vmlinuz",
            "sha256": sha256_file(out / "vmlinuz"),
            "release": release,
            "flavour": flavour,
        }
        if minimal is not None:
            kernel_facts["build_key"] = minimal.key
        manifest = {
            "key": the_plan.key,
            "kernel": kernel_facts,
            "initrd": {"file": initrd, "sha256": sha256_file(out / initrd)},
            "cmdline": CMDLINE,
            "packages": the_plan.packages,
            "go": the_plan.go_version,
            "agent_source_sha256": the_plan.agent_sha256,
        }
        publish_build(out, target, manifest)
    assets, _ = read_manifest(target)
    verify(assets)
    log(f"pod VM image ready in {target}")
    return assets, False
