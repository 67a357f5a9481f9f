"""The pod VM kernel made for the emulated LPAR: Debian's kernel source, a minimal configuration.

Debian's generic s390x kernel probes hardware a pod VM does not have and loads virtio and
iso9660 as modules; under QEMU's TCG that costs seconds per pod VM. This module builds a
kernel from Debian's ``linux-source`` package with Debian's s390x cross compiler: ``make
tinyconfig``, then the fragment :data:`CONFIG_FRAGMENT` (kept in the repository) merged with
the kernel's own ``scripts/kconfig/merge_config.sh`` and ``make olddefconfig``, then a check
that every line of the fragment survived, then ``make bzImage``.

The result is cached in ``<cache>/kernel-<key>/``: the key is the SHA-256 of the source
package's version, the fragment and the compiler's version. An entry whose recorded key or
image checksum does not match is rebuilt, never used. Every external command runs through
plumbum, its output appended to one build log; a failure names the step and the log's last
lines (:class:`KernelBuildError`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from plumbum import local
from plumbum.commands.base import BaseCommand
from plumbum.commands.processes import CommandNotFound

from sim.errors import ConformanceInputError
from sim.files import sha256_file

CONFIG_FRAGMENT = Path(__file__).resolve().parent / "podvm-kernel.config"
SOURCE_DIR = Path("/usr/src")
CROSS_COMPILE = "s390x-linux-gnu-"
ARCH = "s390"
IMAGE = "arch/s390/boot/bzImage"
MANIFEST = "kernel.json"
FORMAT = 1  # bump when the build steps change in a way the key does not see
LOG_TAIL_LINES = 15

Log = Callable[[str], None]


class KernelBuildError(ConformanceInputError):
    """A step of the kernel build failed; the message names the step and quotes the log."""

    def __init__(self, step: str, log_path: Path, detail: str) -> None:
        self.step = step
        self.log_path = log_path
        super().__init__(f"kernel build step {step!r} failed: {detail}\n(build log: {log_path})")


@dataclass(frozen=True)
class KernelSource:
    """Debian's kernel source tarball and the package version it came from."""

    package: str
    version: str
    tarball: Path


@dataclass(frozen=True)
class BuiltKernel:
    """One verified cache entry."""

    directory: Path
    image: Path
    key: str
    release: str
    image_sha256: str


def find_source(source_dir: Path = SOURCE_DIR) -> KernelSource:
    """The newest ``linux-source-X.Y.tar.xz`` and its package's installed version."""
    tarballs = sorted(
        source_dir.glob("linux-source-*.tar.xz"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.name)],
    )
    if not tarballs:
        raise ConformanceInputError(
            f"no linux-source-*.tar.xz in {source_dir}: apt-get install linux-source gcc-s390x-linux-gnu "
            "(or run .ci/setup-lpar-host)"
        )
    tarball = tarballs[-1]
    package = tarball.name.removesuffix(".tar.xz")
    rc, out, _ = local["dpkg-query"]["-W", "-f", "${Version}", package].run(retcode=None)
    return KernelSource(package, out.strip() if rc == 0 and out.strip() else "unpackaged", tarball)


def compiler_version(cross_compile: str = CROSS_COMPILE) -> str:
    """The cross compiler's first ``--version`` line ('missing' when it does not run)."""
    try:
        rc, out, _ = local[f"{cross_compile}gcc"]["--version"].run(retcode=None)
    except (CommandNotFound, OSError):
        return "missing"
    return out.splitlines()[0] if rc == 0 and out else "missing"


def fragment_lines(text: str) -> dict[str, str]:
    """``CONFIG_X -> value`` of a config fragment; ``# CONFIG_X is not set`` gives 'n'."""
    wanted: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        unset = re.fullmatch(r"# (CONFIG_\w+) is not set", line)
        if unset:
            wanted[unset.group(1)] = "n"
        elif line.startswith("CONFIG_"):
            name, _, value = line.partition("=")
            wanted[name] = value
    return wanted


def check_config(fragment: str, dotconfig: str) -> list[str]:
    """Every fragment line olddefconfig did not keep, as 'CONFIG_X=want (got ...)'."""
    have = fragment_lines(dotconfig)
    lost = []
    for name, want in fragment_lines(fragment).items():
        got = have.get(name, "n")
        if got != want:
            lost.append(f"{name}={want} (got {'not set' if got == 'n' else got})")
    return lost


def build_key(source: KernelSource, fragment: str, compiler: str) -> str:
    """SHA-256 over what decides the kernel image: source version, configuration, compiler."""
    material = json.dumps(
        {
            "format": FORMAT,
            "source": source.package,
            "version": source.version,
            "config": fragment,
            "compiler": compiler,
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()


def cached(directory: Path, key: str) -> BuiltKernel | None:
    """The entry in ``directory`` if its recorded key is ``key`` and the image matches its sum."""
    try:
        data = json.loads((directory / MANIFEST).read_text())
        image = directory / str(data["image"])
        if data["key"] != key or not image.is_file() or sha256_file(image) != data["image_sha256"]:
            return None
        return BuiltKernel(directory, image, key, str(data["release"]), str(data["image_sha256"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class KernelBuild:
    """Builds (or reuses) the minimal kernel in ``cache``."""

    def __init__(
        self,
        cache: Path,
        *,
        log: Log = print,
        cross_compile: str = CROSS_COMPILE,
        source_dir: Path = SOURCE_DIR,
        jobs: int | None = None,
    ) -> None:
        self.cache = cache
        self.log = log
        self.cross_compile = cross_compile
        self.source_dir = source_dir
        self.jobs = jobs or os.cpu_count() or 1
        #: podvm-kernel.config, what the build merges into tinyconfig (part of the cache key).
        self.fragment = CONFIG_FRAGMENT.read_text()

    def key(self) -> tuple[KernelSource, str]:
        source = find_source(self.source_dir)
        return source, build_key(source, self.fragment, compiler_version(self.cross_compile))

    def entry(self, key: str) -> Path:
        return self.cache / f"kernel-{key[:16]}"

    def log_path(self, key: str) -> Path:
        return self.cache / f"kernel-{key[:16]}.build.log"

    def ensure(self, *, force: bool = False) -> BuiltKernel:
        """The cached kernel for the current source and fragment, built when missing or bad."""
        source, key = self.key()
        target = self.entry(key)
        if not force:
            found = cached(target, key)
            if found is not None:
                self.log(f"minimal kernel {key[:16]} reused from the cache ({target})")
                return found
            if target.exists():
                self.log(f"cached kernel in {target} does not match its key or checksum; rebuilding")
        return self.build(source, key)

    # --- the build ------------------------------------------------------------------------
    def build(self, source: KernelSource, key: str) -> BuiltKernel:
        self.cache.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path(key)
        log_path.write_text(f"# minimal pod VM kernel {key} from {source.package} {source.version}\n")
        work = self.cache / f"kernel-build-{key[:16]}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        started = time.monotonic()
        self.log(
            f"building the minimal pod VM kernel from {source.package} {source.version} (log: {log_path})"
        )
        try:
            self._step("toolchain", log_path, [f"{self.cross_compile}gcc", "--version"])
            self._step("extract", log_path, ["tar", "-xJf", str(source.tarball), "-C", str(work)])
            trees = [p for p in work.iterdir() if p.is_dir()]
            if len(trees) != 1:
                raise KernelBuildError(
                    "extract", log_path, f"{source.tarball} did not unpack to one directory"
                )
            tree = trees[0]
            make = ["make", f"ARCH={ARCH}", f"CROSS_COMPILE={self.cross_compile}"]
            self._step("tinyconfig", log_path, [*make, "tinyconfig"], cwd=tree)
            fragment = work / "podvm-kernel.config"
            fragment.write_text(self.fragment)
            merge = [str(tree / "scripts/kconfig/merge_config.sh"), "-m", ".config", str(fragment)]
            self._step("merge configuration", log_path, merge, cwd=tree)
            self._step("olddefconfig", log_path, [*make, "olddefconfig"], cwd=tree)
            dotconfig = (tree / ".config").read_text()
            lost = check_config(self.fragment, dotconfig)
            if lost:
                raise KernelBuildError(
                    "check configuration",
                    log_path,
                    f"olddefconfig dropped {', '.join(lost)} (a dependency of {CONFIG_FRAGMENT} is missing)",
                )
            self.log("  configuration: every line of podvm-kernel.config survived olddefconfig")
            self._step("compile", log_path, [*make, f"-j{self.jobs}", "bzImage"], cwd=tree)
            kernelrelease = local[make[0]][[*make[1:], "-s", "kernelrelease"]].with_cwd(tree)
            _, release, _ = kernelrelease.run(retcode=None)
            out = work / "out"
            out.mkdir()
            shutil.copyfile(tree / IMAGE, out / "vmlinuz")
            (out / "config").write_text(dotconfig)
            manifest = {
                "key": key,
                "image": "vmlinuz",
                "image_sha256": sha256_file(out / "vmlinuz"),
                "release": release.strip(),
                "source": {"package": source.package, "version": source.version},
                "config_fragment_sha256": hashlib.sha256(self.fragment.encode()).hexdigest(),
            }
            (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            target = self.entry(key)
            shutil.rmtree(target, ignore_errors=True)
            out.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        built = cached(target, key)
        if built is None:  # pragma: no cover - the entry was just written
            raise KernelBuildError("install", log_path, f"{target} does not verify after the build")
        self.log(f"minimal kernel {key[:16]} built in {time.monotonic() - started:.1f} s: {built.image}")
        return built

    def _step(self, step: str, log_path: Path, argv: list[str], *, cwd: Path | None = None) -> None:
        """Run one command through plumbum, its output appended to the log; time it."""
        started = time.monotonic()
        with log_path.open("a") as handle:
            handle.write(f"\n# step {step}: {' '.join(argv)}\n")
            handle.flush()
            try:
                command: BaseCommand = local[argv[0]][argv[1:]]
                if cwd is not None:
                    command = command.with_cwd(cwd)
                rc: int | None = command.popen(stdout=handle, stderr=subprocess.STDOUT).wait()
            except (CommandNotFound, OSError) as exc:
                handle.write(f"cannot run {argv[0]}: {exc}\n")
                rc = None
        if rc != 0:
            detail = f"{argv[0]} could not start" if rc is None else f"exit status {rc}"
            raise KernelBuildError(step, log_path, f"{detail}; last lines of the log:\n{tail(log_path)}")
        self.log(f"  {step}: {time.monotonic() - started:.1f} s")


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log, indented."""
    try:
        text = path.read_text(errors="replace").rstrip().splitlines()
    except OSError as exc:
        return f"    (log unreadable: {exc})"
    return "\n".join(f"    {line}" for line in text[-lines:])
