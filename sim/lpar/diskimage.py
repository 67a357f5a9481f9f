"""``lpar prepare --disk``: the pod VM's bootable qcow2 volume, as CAA's libvirt provider boots it.

CAA uploads one qcow2 volume (``LIBVIRT_VOL_NAME``, default ``podvm-base.qcow2``) and boots
its pod VMs from it, with no ``-kernel``: SeaBIOS on x86_64, the s390-ccw firmware on s390x.
This builds that volume for either architecture from Debian packages only (``apt-get
download``: the kernel, busybox-static; the minimal s390x kernel from Debian's
linux-source) and the project's agent, which runs as init with
``peerpods.podvm=disk`` on the kernel command line (see podvm-agent/disk.go):

* ``amd64``: an MBR disk, SYSLINUX's MBR code (syslinux-common) and one FAT partition with
  SYSLINUX (installed by ``syslinux`` through mtools, no mount), Debian's amd64 kernel and a
  gzip initramfs: busybox, the agent, and the modules CAA's x86_64 domain needs (its cidata
  ISO is an IDE CD-ROM, its NIC virtio-net; SATA and virtio disks too).
* ``s390x``: the zipl SCSI-scheme bootmap (:mod:`sim.lpar.bootdisk`) loading the minimal
  kernel (:mod:`sim.lpar.kernel`, the same build the direct boot uses; it has TCP/IP) or
  Debian's s390x kernel, and an uncompressed initramfs: busybox, the agent, and with
  Debian's kernel its virtio-blk/-net and iso9660 modules.

Each build lands in ``<cache>/disk-<arch>-<key>/`` with ``podvm-base.qcow2`` and a manifest of
its SHA-256; the key hashes everything the image is made from (package versions, tools,
Go, the agent's source, modules, command line), so a change builds a new directory and a
stale or damaged image is never used.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sim.errors import ConformanceInputError
from sim.files import sha256_file
from sim.lpar import bootdisk, cpio, kmodules
from sim.lpar.assets import MANIFEST, AssetsMissing, agent_source_digest, default_cache_dir, publish_build
from sim.lpar.builder import (
    BUSYBOX,
    BuildError,
    Log,
    _candidate,
    _download,
    _phase,
    _run,
    build_agent,
    ensure_foreign_arch,
    go_binary,
    minimal_kernel,
)
from sim.lpar.kernel import BuiltKernel

FORMAT = 2  # bump when the image layout changes, so old caches are not reused
#: What the disk mode needs beyond podvm-kernel.config: IPv4 TCP/IP (the DHCP lease, port
#: 15150) and packet sockets (udhcpc); not IPv6, which CONFIG_INET would bring by default.
#: The minimal kernel with these lines is its own cache entry.
VOLUME = "podvm-base.qcow2"
#: The kernel parameter that puts the agent in its disk mode (podvm-agent/disk.go, ModeParam).
MODE_PARAM = "peerpods.podvm=disk"
SYSLINUX_MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")
#: File times for mtools and syslinux (1980-01-01, FAT's first day) and the FAT volume serial.
REPRODUCIBLE = {"SOURCE_DATE_EPOCH": "315532800"}
FAT_SERIAL = "50445631"


@dataclass(frozen=True)
class DiskArch:
    """What differs between the two pod VM images."""

    name: str  # Debian's and Go's architecture name
    machine: str  # uname -m, libvirt's arch, the agent's report
    kernel_meta: str
    cmdline: str
    modules: tuple[str, ...]
    #: Host tools whose Debian versions shape the image (in the key).
    tools: tuple[str, ...]
    boot: str  # how the firmware finds the kernel
    #: The kernels an image can have, preferred first: "minimal" (sim.lpar.kernel with
    #: everything built in, TCP/IP included) or "debian" (Debian's, with modules).
    kernels: tuple[str, ...] = ("debian",)


ARCHES: dict[str, DiskArch] = {
    "amd64": DiskArch(
        name="amd64",
        machine="x86_64",
        kernel_meta="linux-image-amd64",
        cmdline=f"console=ttyS0 quiet panic=-1 {MODE_PARAM}",
        # CAA's x86_64 domain: boot disk on SATA, cidata on an IDE CD-ROM (on SATA with
        # firmware), a virtio-net NIC; virtio-blk for other layouts.
        modules=("ata_piix", "ahci", "sr_mod", "sd_mod", "isofs", "virtio_pci", "virtio_blk", "virtio_net"),
        tools=("syslinux", "syslinux-common", "mtools", "qemu-utils"),
        boot="SeaBIOS -> SYSLINUX MBR -> FAT partition (SYSLINUX) -> kernel + initramfs",
    ),
    "s390x": DiskArch(
        name="s390x",
        machine="s390x",
        kernel_meta="linux-image-s390x",
        cmdline=f"console=ttysclp0 quiet panic=-1 {MODE_PARAM}",
        # CAA's s390x domain: boot disk and cidata on virtio-blk (ccw), a virtio-net NIC.
        modules=("virtio_blk", "isofs", "virtio_net"),
        tools=("qemu-utils",),
        boot="s390-ccw firmware -> zipl SCSI-scheme bootmap -> kernel + initramfs",
        kernels=("minimal", "debian"),
    ),
}


class DiskImageMissing(AssetsMissing):
    """No current, intact disk image for this architecture in the cache."""


def arch_spec(arch: str) -> DiskArch:
    """The architecture by its Debian/Go name; ``x86_64`` is taken for ``amd64``."""
    chosen = "amd64" if arch == "x86_64" else arch
    if chosen not in ARCHES:
        raise ConformanceInputError(f"--arch {arch!r}: known architectures are {', '.join(ARCHES)}")
    return ARCHES[chosen]


def prepare_hint(arch: DiskArch) -> str:
    return f"run `peerpods-conformance lpar prepare --disk --arch {arch.name}`"


@dataclass(frozen=True)
class DiskImage:
    """One verified build: the qcow2 volume and what it was made from."""

    directory: Path
    volume: Path
    arch: str
    key: str
    sha256: str
    cmdline: str
    packages: dict[str, str]
    manifest: dict[str, object]
    flavour: str = "debian"


@dataclass(frozen=True)
class DiskPlan:
    """What an image would be built from, and hence its cache key."""

    arch: DiskArch
    kernel_package: str
    packages: dict[str, str]
    tools: dict[str, str]
    go_version: str
    agent_sha256: str
    #: The minimal kernel (the direct boot's); None: Debian's kernel and its modules.
    minimal: BuiltKernel | None = None

    @property
    def flavour(self) -> str:
        return "minimal" if self.minimal else "debian"

    @property
    def modules(self) -> tuple[str, ...]:
        """Modules the initramfs carries: none when the kernel has everything built in."""
        return () if self.minimal else self.arch.modules

    @property
    def key(self) -> str:
        material: dict[str, object] = {
            "format": FORMAT,
            "arch": self.arch.name,
            "packages": self.packages,
            "tools": self.tools,
            "go": self.go_version,
            "agent": self.agent_sha256,
            "modules": self.modules,
            "cmdline": self.arch.cmdline,
        }
        if self.minimal:
            material["kernel"] = self.minimal.key
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _tool_versions(names: tuple[str, ...]) -> dict[str, str]:
    """The installed Debian version of each host tool the image is made with."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            out = _run(["dpkg-query", "-W", "-f", "${Status}|${Version}", name])
        except BuildError:
            out = ""
        if "install ok installed" not in out:
            raise BuildError(f"Debian package {name} is not installed; run .ci/setup-lpar-host")
        versions[name] = out.split("|", 1)[1]
    return versions


def plan(arch: DiskArch, minimal: tuple[BuiltKernel, dict[str, str]] | None = None) -> DiskPlan:
    """Resolve the exact kernel and busybox versions for ``arch``; with a ``minimal`` kernel
    (and its source package), that stands where Debian's kernel would."""
    if minimal is None:
        _, depends = _candidate(f"{arch.kernel_meta}:{arch.name}")
        match = re.search(rf"(linux-image-[0-9][^\s,(]*-{arch.name})", depends)
        if match is None:
            raise BuildError(
                f"cannot tell which kernel {arch.kernel_meta}:{arch.name} depends on ({depends!r})"
            )
        kernel = match.group(1)
        packages = {kernel: _candidate(f"{kernel}:{arch.name}")[0]}
    else:
        packages = dict(minimal[1])
        kernel = next(iter(packages))
    packages[BUSYBOX] = _candidate(f"{BUSYBOX}:{arch.name}")[0]
    return DiskPlan(
        arch=arch,
        kernel_package=kernel,
        packages=packages,
        tools=_tool_versions(arch.tools),
        go_version=_run([go_binary(), "version"]).strip(),
        agent_sha256=agent_source_digest(),
        minimal=minimal[0] if minimal else None,
    )


def initramfs(root: Path, release: str, agent: Path, modules: tuple[str, ...], *, compress: bool) -> bytes:
    """busybox (``/bin/sh`` for debugging with rdinit=/bin/sh), the modules in load order
    (listed in /etc/podvm-modules, which the agent reads), and the agent as /init."""
    ordered = kmodules.load_order(root / "lib/modules" / release, modules) if modules else []
    entries = [
        cpio.Entry(name, cpio.S_IFDIR | 0o755)
        for name in ("bin", "dev", "etc", "lib", "lib/modules", "mnt", "proc", "run", "sys", "tmp")
    ]
    entries.append(cpio.Entry("bin/busybox", cpio.S_IFREG | 0o755, (root / "bin/busybox").read_bytes()))
    entries.append(cpio.Entry("bin/sh", cpio.S_IFLNK | 0o777, b"busybox"))
    for module in ordered:
        entries.append(cpio.Entry(f"lib/modules/{module.name}.ko", cpio.S_IFREG | 0o644, module.data))
    if ordered:
        listing = "".join(f"{module.name}.ko\n" for module in ordered)
        entries.append(cpio.Entry("etc/podvm-modules", cpio.S_IFREG | 0o644, listing.encode()))
    entries.append(cpio.Entry("init", cpio.S_IFREG | 0o755, agent.read_bytes()))
    entries.sort(key=lambda entry: entry.name)
    return cpio.gzip_newc(entries) if compress else cpio.write_newc(entries)


def syslinux_config(cmdline: str) -> str:
    """Boot the one entry at once; SYSLINUX's own messages go to the serial console too."""
    return (
        "SERIAL 0 115200\n"
        "DEFAULT podvm\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "LABEL podvm\n"
        "  LINUX /vmlinuz\n"
        "  INITRD /initrd.gz\n"
        f"  APPEND {cmdline}\n"
    )


def x86_raw_disk(work: Path, kernel: Path, initrd: bytes, cmdline: str) -> Path:
    """An MBR disk: SYSLINUX's MBR code, one active FAT partition from 1 MiB holding SYSLINUX,
    the kernel, the initramfs and syslinux.cfg. Made with mtools and syslinux, unmounted."""
    if not SYSLINUX_MBR.is_file():
        raise BuildError(f"{SYSLINUX_MBR} is missing (Debian's syslinux-common); run .ci/setup-lpar-host")
    payload = kernel.stat().st_size + len(initrd)
    size_mib = max(32, -(-payload * 5 // 4 // bootdisk.MIB) + 4)
    sectors = size_mib * bootdisk.MIB // bootdisk.SECTOR
    fs = work / "boot.fat"
    with fs.open("wb") as handle:
        handle.truncate(size_mib * bootdisk.MIB)
    # 64 heads x 32 sectors; the boot sector records the partition's offset (hidden sectors);
    # a fixed volume serial and file times make the same inputs give the same bytes.
    _run(["mformat", "-i", str(fs), "-T", str(sectors), "-h", "64", "-s", "32",
          "-H", str(bootdisk.PARTITION_START), "-N", FAT_SERIAL, "-v", "PODVMBOOT", "::"],
         env=REPRODUCIBLE)  # fmt: skip
    (work / "initrd.gz").write_bytes(initrd)
    (work / "syslinux.cfg").write_text(syslinux_config(cmdline))
    shutil.copyfile(kernel, work / "vmlinuz")
    for name in ("vmlinuz", "initrd.gz", "syslinux.cfg"):
        _run(["mcopy", "-i", str(fs), str(work / name), f"::{name}"], env=REPRODUCIBLE)
    _run(["syslinux", "--install", str(fs)], env=REPRODUCIBLE)
    with fs.open("rb") as handle:
        boot_sector = handle.read(bootdisk.SECTOR)
    record = bootdisk.mbr(SYSLINUX_MBR.read_bytes(), sectors, bootdisk.fat_partition_type(boot_sector))
    raw = work / "disk.raw"
    with raw.open("wb") as out, fs.open("rb") as source:
        out.write(record)
        out.write(bytes(bootdisk.PARTITION_START * bootdisk.SECTOR - len(record)))
        shutil.copyfileobj(source, out)
    return raw


def s390x_raw_disk(work: Path, kernel: Path, initrd: bytes, cmdline: str) -> Path:
    raw = work / "disk.raw"
    raw.write_bytes(bootdisk.s390_boot_disk(kernel.read_bytes(), initrd, cmdline))
    return raw


def read_manifest(directory: Path) -> DiskImage:
    data = json.loads((directory / MANIFEST).read_text())
    return DiskImage(
        directory=directory,
        volume=directory / str(data["volume"]["file"]),
        arch=str(data["arch"]),
        key=str(data["key"]),
        sha256=str(data["volume"]["sha256"]),
        cmdline=str(data["cmdline"]),
        packages=dict(data["packages"]),
        manifest=data,
        flavour=str(data.get("kernel", {}).get("flavour", "debian")),
    )


def verify(image: DiskImage) -> None:
    """Raise DiskImageMissing unless the volume exists and matches its recorded sum."""
    hint = prepare_hint(arch_spec(image.arch))
    if not image.volume.is_file():
        raise DiskImageMissing(f"pod VM disk image {image.volume} is missing; {hint}")
    actual = sha256_file(image.volume)
    if actual != image.sha256:
        raise DiskImageMissing(
            f"pod VM disk image {image.volume} fails its checksum (sha256 {actual}, manifest says "
            f"{image.sha256}); {hint}"
        )


def find_disk_image(arch: str, cache: Path | None = None, *, kernel: str | None = None) -> DiskImage:
    """The verified disk image of ``arch`` built from the current agent source; ``kernel``
    picks its kernel, else the first of the architecture's kernels that is prepared."""
    spec = arch_spec(arch)
    if kernel is not None and kernel not in spec.kernels:
        raise ConformanceInputError(
            f"kernel {kernel!r}: the {spec.name} disk image has {', '.join(spec.kernels)}"
        )
    cache = cache or default_cache_dir()
    want_agent = agent_source_digest()
    candidates = sorted(
        cache.glob(f"disk-{spec.name}-*/{MANIFEST}"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    current: dict[str, DiskImage] = {}
    for manifest in candidates:
        try:
            image = read_manifest(manifest.parent)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        if image.manifest.get("agent_source_sha256") == want_agent:
            current.setdefault(image.flavour, image)
    for flavour in (kernel,) if kernel else spec.kernels:
        if flavour in current:
            verify(current[flavour])
            return current[flavour]
    if current:
        raise DiskImageMissing(
            f"no {spec.name} pod VM disk image with the {kernel} kernel in {cache}; "
            f"{prepare_hint(spec)} --kernel {kernel}"
        )
    if candidates:
        raise DiskImageMissing(
            f"no {spec.name} pod VM disk image in {cache} was built from the current podvm-agent source; "
            f"{prepare_hint(spec)}"
        )
    raise DiskImageMissing(f"no {spec.name} pod VM disk image in {cache}; {prepare_hint(spec)}")


def _minimal_kernel(cache: Path, log: Log) -> tuple[BuiltKernel, dict[str, str]] | None:
    """The minimal kernel, the same build the direct boot uses (built or reused); None, after a
    warning naming the step and the build log, when it cannot be built."""
    with _phase(log, "minimal kernel"):
        return minimal_kernel(cache, log)


def prepare_disk(
    arch: str, cache: Path | None = None, *, log: Log = print, force: bool = False, kernel: str | None = None
) -> tuple[DiskImage, bool]:
    """Build (or reuse) the disk image of ``arch``; the verified image and whether it was reused.

    ``kernel`` is one of the architecture's kernels (default: its first; for s390x the
    minimal kernel, falling back to Debian's with a warning when it cannot be built)."""
    spec = arch_spec(arch)
    chosen = kernel or spec.kernels[0]
    if chosen not in spec.kernels:
        raise ConformanceInputError(
            f"--kernel {chosen}: the {spec.name} disk image has {', '.join(spec.kernels)}"
        )
    cache = (cache or default_cache_dir()).expanduser()
    if spec.name == "s390x":
        ensure_foreign_arch(log)
    minimal = _minimal_kernel(cache, log) if chosen == "minimal" else None
    with _phase(log, f"resolving packages ({spec.name})"):
        the_plan = plan(spec, minimal)
    target = cache / f"disk-{spec.name}-{the_plan.key}"
    if (target / MANIFEST).is_file() and not force:
        try:
            image = read_manifest(target)
            verify(image)
        except (DiskImageMissing, OSError, ValueError, KeyError) as exc:
            log(f"cached disk image is damaged ({exc}); rebuilding")
        else:
            return image, True
    cache.mkdir(parents=True, exist_ok=True)
    with _phase(log, "downloading packages"):
        debs = _download(the_plan.packages, cache / "debs", log, arch=spec.name)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f"build-disk-{spec.name}-") as tmp:
        work = Path(tmp)
        root = work / "root"
        for deb in debs.values():
            _run(["dpkg-deb", "-x", str(deb), str(root)])
        if the_plan.minimal is None:
            kernels = sorted((root / "boot").glob("vmlinuz-*"))
            if not kernels:
                raise BuildError(f"{the_plan.kernel_package} holds no /boot/vmlinuz-*")
            kernel_image, release = kernels[0], kernels[0].name.removeprefix("vmlinuz-")
        else:
            kernel_image, release = the_plan.minimal.image, the_plan.minimal.release
        with _phase(log, f"building the pod VM agent for {spec.name}"):
            build_agent(work / "podvm-agent", cache / "go-build", arch=spec.name)
        with _phase(log, f"writing the initramfs ({the_plan.flavour} kernel {release})"):
            initrd = initramfs(
                root, release, work / "podvm-agent", the_plan.modules, compress=spec.name == "amd64"
            )
        with _phase(log, f"writing the boot disk ({spec.boot})"):
            maker = x86_raw_disk if spec.name == "amd64" else s390x_raw_disk
            raw = maker(work, kernel_image, initrd, spec.cmdline)
        out = work / "out"
        out.mkdir()
        with _phase(log, "converting to qcow2"):
            _run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(out / VOLUME)])
        kernel_facts: dict[str, object] = {
            "package": the_plan.kernel_package,
            "flavour": the_plan.flavour,
            "release": release,
            "sha256": sha256_file(kernel_image),
        }
        if the_plan.minimal is not None:
            kernel_facts["build_key"] = the_plan.minimal.key
        manifest = {
            "key": the_plan.key,
            "arch": spec.name,
            "machine": spec.machine,
            "boot": spec.boot,
            "volume": {
                "file": VOLUME,
                "sha256": sha256_file(out / VOLUME),
                "virtual_size": raw.stat().st_size,
            },
            "kernel": kernel_facts,
            "initrd": {"bytes": len(initrd), "sha256": hashlib.sha256(initrd).hexdigest()},
            "modules": list(the_plan.modules),
            "cmdline": spec.cmdline,
            "packages": the_plan.packages,
            "tools": the_plan.tools,
            "go": the_plan.go_version,
            "agent_source_sha256": the_plan.agent_sha256,
        }
        publish_build(out, target, manifest)
    image = read_manifest(target)
    verify(image)
    log(f"pod VM disk image ready ({the_plan.flavour} kernel): {image.volume}")
    return image, False
