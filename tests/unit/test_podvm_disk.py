"""The pod VM disk image's parts without booting: boot records, module order, cache, report."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from sim.errors import ConformanceInputError
from sim.lpar import assets, bootdisk, diskimage, kmodules
from sim.peerpods.diskreport import DiskGuestReport
from sim.peerpods.podvm import GuestReportError

# --- x86_64: MBR ------------------------------------------------------------------------


def test_mbr_holds_the_boot_code_and_one_active_partition_from_1_mib() -> None:
    sector = bootdisk.mbr(b"\xfa" * 440, 65536, 0x0E)
    assert len(sector) == 512 and sector[:440] == b"\xfa" * 440 and sector[510:] == b"\x55\xaa"
    status, kind, first, count = struct.unpack_from("<B3xB3xII", sector, 446)
    assert (status, kind, first, count) == (0x80, 0x0E, 2048, 65536)
    assert sector[462:510] == bytes(48)  # the other three entries are empty


def test_mbr_refuses_boot_code_that_overwrites_the_table() -> None:
    with pytest.raises(bootdisk.BootDiskError, match="441 bytes"):
        bootdisk.mbr(bytes(441), 1, 0x0C)


@pytest.mark.parametrize(
    ("offset", "label", "kind"), [(54, b"FAT16   ", 0x0E), (54, b"FAT12   ", 0x0E), (82, b"FAT32   ", 0x0C)]
)
def test_partition_type_follows_the_fat_boot_sector(offset: int, label: bytes, kind: int) -> None:
    sector = bytearray(512)
    sector[offset : offset + 8] = label
    assert bootdisk.fat_partition_type(bytes(sector)) == kind


def test_a_partition_without_fat_is_refused() -> None:
    with pytest.raises(bootdisk.BootDiskError, match="no FAT"):
        bootdisk.fat_partition_type(bytes(512))


def test_syslinux_boots_the_one_entry_with_the_disk_mode_on() -> None:
    config = diskimage.syslinux_config(diskimage.ARCHES["amd64"].cmdline)
    assert "TIMEOUT 0" in config and "INITRD /initrd.gz" in config
    assert "APPEND console=ttyS0 quiet panic=-1 peerpods.podvm=disk" in config


# --- s390x: parameter area and zipl bootmap ---------------------------------------------


def fake_kernel(size: int = 0x20000, max_cmdline: int = 4096) -> bytes:
    image = bytearray(size)
    image[8:32] = bootdisk.S390_LINUX_MAGIC
    struct.pack_into(">Q", image, bootdisk.MAX_COMMAND_LINE_SIZE, max_cmdline)
    image[bootdisk.COMMAND_LINE : bootdisk.COMMAND_LINE + 17] = b"root=/dev/ram0 ro"
    return bytes(image)


def test_initrd_goes_where_qemus_own_initrd_goes() -> None:
    assert bootdisk.initrd_address(5 << 20) == 8 << 20
    assert bootdisk.initrd_address((7 << 20) + 1) == 9 << 20  # past the kernel plus 1 MiB
    assert bootdisk.initrd_address(12 << 20) == 13 << 20


def test_parameter_area_gets_initrd_and_command_line() -> None:
    image = bootdisk.s390_kernel_with_parameters(
        fake_kernel(), initrd_start=0x900000, initrd_size=1234, cmdline="a b"
    )
    assert struct.unpack_from(">QQ", image, bootdisk.INITRD_START) == (0x900000, 1234)
    assert image[bootdisk.COMMAND_LINE : bootdisk.COMMAND_LINE + 4] == b"a b\0"
    assert b"root=" not in image  # the built-in default is replaced, not appended to


def test_parameter_area_refuses_a_non_s390_image_and_a_long_command_line() -> None:
    with pytest.raises(bootdisk.BootDiskError, match="not an s390x Linux image"):
        bootdisk.s390_kernel_with_parameters(bytes(0x20000), initrd_start=0, initrd_size=0, cmdline="")
    with pytest.raises(bootdisk.BootDiskError, match="takes 895"):
        bootdisk.s390_kernel_with_parameters(
            fake_kernel(max_cmdline=0), initrd_start=0, initrd_size=0, cmdline="x" * 900
        )


def ipl(disk: bytes) -> tuple[dict[int, bytes], int]:
    """Follow the SCSI scheme as the s390-ccw firmware does: memory written, start address."""

    def block(number: int) -> bytes:
        return disk[number * 512 : (number + 1) * 512]

    mbr = block(0)
    assert mbr[:4] == b"zIPL" and struct.unpack_from(">I", mbr, 4) == (1,)
    (program_table,) = struct.unpack_from(">Q", mbr, 16)
    table = block(program_table)
    assert table[:4] == b"zIPL"
    (components_block,) = struct.unpack_from(">Q", table, 16)
    components = block(components_block)
    assert components[:4] == b"zIPL" and components[4] == 0
    memory: dict[int, bytes] = {}
    offset = 32
    while components[offset + 23] == bootdisk.COMPONENT_LOAD:
        (list_block,) = struct.unpack_from(">Q", components, offset)
        (address,) = struct.unpack_from(">Q", components, offset + 24)
        data = b""
        ranges = block(list_block)
        for entry in range(0, 512, 16):
            first, size, count = struct.unpack_from(">QHH", ranges, entry)
            if first == 0:
                break
            assert size == 512
            data += disk[first * 512 : (first + count + 1) * 512]
        memory[address] = data
        offset += 32
    assert components[offset + 23] == bootdisk.COMPONENT_EXEC
    (start,) = struct.unpack_from(">Q", components, offset + 24)
    return memory, start


def test_zipl_bootmap_loads_the_kernel_at_0_and_the_initrd_above_it() -> None:
    kernel, initrd = fake_kernel(), bytes(range(256)) * 4000
    disk = bootdisk.s390_boot_disk(kernel, initrd, "console=ttysclp0")
    memory, start = ipl(disk)
    assert start == 0x10000 and sorted(memory) == [0, 8 << 20]
    loaded_kernel = memory[0][: len(kernel)]
    assert loaded_kernel[8:32] == bootdisk.S390_LINUX_MAGIC
    assert struct.unpack_from(">QQ", loaded_kernel, bootdisk.INITRD_START) == (8 << 20, len(initrd))
    assert memory[8 << 20][: len(initrd)] == initrd


def test_a_large_segment_is_split_into_block_runs() -> None:
    big = bytes(bootdisk.MAX_RUN * 512 * 2 + 100)
    memory, _ = ipl(bootdisk.zipl_scsi_disk([bootdisk.Segment(0x1000, big)], 0x1000))
    assert memory[0x1000][: len(big)] == big


# --- kernel modules -----------------------------------------------------------------------


def module(directory: Path, name: str, depends: str) -> None:
    path = directory / "kernel" / "drivers" / f"{name}.ko"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x7fELF...\0license=GPL\0depends=" + depends.encode() + b"\0name=" + name.encode() + b"\0"
    )


def test_modules_come_after_their_dependencies_and_built_ins_are_left_out(tmp_path: Path) -> None:
    module(tmp_path, "sr_mod", "scsi_mod,cdrom")
    module(tmp_path, "scsi_mod", "scsi_common")
    module(tmp_path, "scsi_common", "")
    module(tmp_path, "cdrom", "")
    module(tmp_path, "isofs", "cdrom")
    module(tmp_path, "t10-pi", "")
    (tmp_path / "modules.builtin").write_text("kernel/drivers/scsi/scsi_common.ko\n")
    order = [m.name for m in kmodules.load_order(tmp_path, ("isofs", "sr_mod", "t10-pi"))]
    assert order == ["cdrom", "isofs", "scsi_mod", "sr_mod", "t10_pi"]


def test_a_missing_module_names_what_needed_it(tmp_path: Path) -> None:
    module(tmp_path, "virtio_net", "net_failover")
    with pytest.raises(kmodules.ModuleError, match=r"no net_failover \(needed by virtio_net\)"):
        kmodules.load_order(tmp_path, ("virtio_net",))


# --- the cache ----------------------------------------------------------------------------


def cached_image(cache: Path, arch: str = "s390x", agent: str | None = None, flavour: str = "debian") -> Path:
    directory = cache / f"disk-{arch}-{flavour}-0123456789"
    directory.mkdir(parents=True)
    volume = directory / diskimage.VOLUME
    volume.write_bytes(b"qcow2 stand-in")
    from sim.files import sha256_file
    from sim.lpar.assets import agent_source_digest

    manifest = {
        "key": "0123456789abcdef",
        "arch": arch,
        "volume": {"file": diskimage.VOLUME, "sha256": sha256_file(volume)},
        "cmdline": diskimage.ARCHES[arch].cmdline,
        "packages": {},
        "kernel": {"flavour": flavour},
        "agent_source_sha256": agent or agent_source_digest(),
    }
    (directory / assets.MANIFEST).write_text(json.dumps(manifest))
    return volume


def test_a_cached_image_is_found_and_verified(tmp_path: Path) -> None:
    volume = cached_image(tmp_path)
    assert diskimage.find_disk_image("s390x", tmp_path).volume == volume


def test_no_image_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(diskimage.DiskImageMissing, match="lpar prepare --disk --arch amd64"):
        diskimage.find_disk_image("x86_64", tmp_path)


def test_a_damaged_image_fails_its_checksum(tmp_path: Path) -> None:
    cached_image(tmp_path).write_bytes(b"changed")
    with pytest.raises(diskimage.DiskImageMissing, match="fails its checksum"):
        diskimage.find_disk_image("s390x", tmp_path)


def test_an_image_of_another_agent_source_is_stale(tmp_path: Path) -> None:
    cached_image(tmp_path, agent="0" * 64)
    with pytest.raises(diskimage.DiskImageMissing, match="current podvm-agent source"):
        diskimage.find_disk_image("s390x", tmp_path)


def test_the_minimal_kernels_image_is_preferred_and_either_can_be_picked(tmp_path: Path) -> None:
    debian = cached_image(tmp_path, flavour="debian")
    minimal = cached_image(tmp_path, flavour="minimal")
    assert diskimage.find_disk_image("s390x", tmp_path).volume == minimal
    assert diskimage.find_disk_image("s390x", tmp_path, kernel="debian").volume == debian


def test_a_kernel_the_architecture_has_no_image_with_says_how_to_build_it(tmp_path: Path) -> None:
    cached_image(tmp_path, flavour="debian")
    with pytest.raises(diskimage.DiskImageMissing, match="--arch s390x` --kernel minimal"):
        diskimage.find_disk_image("s390x", tmp_path, kernel="minimal")
    with pytest.raises(ConformanceInputError, match="the amd64 disk image has debian"):
        diskimage.find_disk_image("amd64", tmp_path, kernel="minimal")


def test_the_minimal_kernel_carries_no_modules_and_has_its_own_key() -> None:
    from sim.lpar.kernel import BuiltKernel

    arch = diskimage.ARCHES["s390x"]
    common = {
        "arch": arch,
        "kernel_package": "k",
        "packages": {"k": "1"},
        "tools": {},
        "go_version": "go",
        "agent_sha256": "a",
    }
    debian = diskimage.DiskPlan(**common)  # type: ignore[arg-type]
    built = BuiltKernel(Path("/k"), Path("/k/bzImage"), "f" * 64, "6.1.0", "0" * 64)
    minimal = diskimage.DiskPlan(**common, minimal=built)  # type: ignore[arg-type]
    assert debian.modules == ("virtio_blk", "isofs", "virtio_net") and minimal.modules == ()
    assert (debian.flavour, minimal.flavour) == ("debian", "minimal") and debian.key != minimal.key
    fragment = (Path(diskimage.__file__).parent / "podvm-kernel.config").read_text()
    assert "CONFIG_INET=y" in fragment and "CONFIG_PACKET=y" in fragment  # DHCP and port 15150


def test_an_unknown_architecture_is_refused() -> None:
    with pytest.raises(ConformanceInputError, match="--arch 'ppc64le'"):
        diskimage.arch_spec("ppc64le")


# --- the disk-mode report -----------------------------------------------------------------

BASE: dict[str, Any] = {
    "arch": "x86_64",
    "machine": None,
    "algorithm": "sha256",
    "digest": "d",
    "dummy": True,
    "written": {},
    "ignored": [],
    "error": None,
}
DISK: dict[str, Any] = {
    "mode": "disk",
    "address": "10.0.2.15/24",
    "router": "10.0.2.2",
    "pod_network": {"interface": "eth0"},
    "network_error": None,
    "listening": True,
}


def test_disk_report_splits_into_the_guest_report_and_the_network() -> None:
    report = DiskGuestReport.from_dict({**BASE, **DISK})
    assert report.guest.arch == "x86_64" and report.ip == "10.0.2.15" and report.listening


def test_a_direct_boot_report_is_not_a_disk_report() -> None:
    with pytest.raises(GuestReportError, match=r"peerpods\.podvm=disk"):
        DiskGuestReport.from_dict(dict(BASE))


@pytest.mark.parametrize(("key", "value"), [("listening", "yes"), ("address", 5), ("pod_network", [])])
def test_a_disk_report_field_of_the_wrong_type_is_named(key: str, value: object) -> None:
    with pytest.raises(GuestReportError, match=repr(key)):
        DiskGuestReport.from_dict({**BASE, **DISK, key: value})


def test_the_guest_part_is_checked_as_the_direct_boot_report_is() -> None:
    with pytest.raises(GuestReportError, match="unexpected \\['extra'\\]"):
        DiskGuestReport.from_dict({**BASE, **DISK, "extra": 1})


# --- bare QEMU boots ----------------------------------------------------------------------


def test_qemu_devices_are_those_of_caas_domains(tmp_path: Path) -> None:
    from sim.lpar.diskboot import qemu_command

    x86 = " ".join(qemu_command("amd64", tmp_path / "v.qcow2", tmp_path / "c.iso", 4242, accel="kvm"))
    assert x86.startswith("qemu-system-x86_64 -accel kvm -M pc ")
    assert "ide-hd,drive=root,bus=ahci.0,bootindex=1" in x86 and "ide-cd,drive=cidata" in x86
    assert "hostfwd=tcp:127.0.0.1:4242-:15150" in x86 and "snapshot=on" in x86 and "-kernel" not in x86
    s390 = " ".join(qemu_command("s390x", tmp_path / "v.qcow2", tmp_path / "c.iso", 4242))
    assert "virtio-blk-ccw,drive=root,bootindex=1,iommu_platform=on" in s390 and "sclpconsole" in s390
    assert "virtio-net-ccw,netdev=n0,iommu_platform=on" in s390 and "-kernel" not in s390


def test_the_x86_accelerator_can_be_forced_and_a_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    from sim.errors import TargetError
    from sim.lpar.diskboot import ACCEL_ENV, x86_accelerator

    monkeypatch.setenv(ACCEL_ENV, "tcg")
    assert x86_accelerator()[0] == "tcg"
    monkeypatch.setenv(ACCEL_ENV, "hvf")
    with pytest.raises(TargetError, match=ACCEL_ENV):
        x86_accelerator()
