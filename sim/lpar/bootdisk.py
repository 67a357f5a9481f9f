"""Boot records for the pod VM's disk image: an x86 MBR, and an s390x zipl (SCSI scheme) bootmap.

CAA's libvirt provider boots its pod VM from the qcow2 volume alone (no ``-kernel``), so the
volume must carry what the firmware looks for:

* **x86_64** (SeaBIOS): sector 0 is a master boot record. Its code is SYSLINUX's ``mbr.bin``
  (from Debian's syslinux-common); it loads the volume boot record of the active partition,
  a FAT file system holding SYSLINUX (installed by the ``syslinux`` tool through mtools), the
  kernel, the initramfs and ``syslinux.cfg``. This module writes only the partition table.
* **s390x** (QEMU's s390-ccw firmware on a virtio-blk disk with 512-byte blocks): block 0
  starts with the ``zIPL`` magic of the SCSI scheme that IBM's ``zipl`` tool writes on SCSI
  and virtio disks; it points to a program table, whose first entry points to a component
  table: segments to load (each a list of block ranges) and the address to start at. This
  module writes that bootmap itself, from the documented on-disk layout (big-endian
  structures of 16 and 32 bytes): ``zipl`` is an s390x program that maps the files of a
  mounted file system. The
  segments are what QEMU's own ``-kernel``/``-initrd`` boot puts in memory: the kernel image
  at 0 with the initramfs address, size and command line written into its parameter area
  (0x10400), the initramfs at 8 MiB (or the next MiB boundary past the kernel plus 1 MiB),
  and the start at the kernel's entry 0x10000.

The firmware also boots an ISO 9660 image's El Torito entry from a virtio-blk disk (checked
with QEMU 7.2, 512- and 2048-byte blocks; see the README, "The pod VM disk image"); the
zipl layout is kept because it is what ``zipl`` writes on SCSI and virtio disks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sim.errors import ConformanceInputError

SECTOR = 512
#: The partition starts at 1 MiB, as partitioning tools align it.
PARTITION_START = 2048

# s390x kernel image: entry point and parameter area (arch/s390/include/asm/setup.h).
KERNEL_ENTRY = 0x10000
PARMAREA = 0x10400
INITRD_START = 0x10408
INITRD_SIZE = 0x10410
MAX_COMMAND_LINE_SIZE = 0x10430
COMMAND_LINE = 0x10480
LEGACY_COMMAND_LINE_SIZE = 896
#: Where QEMU's direct kernel boot puts the initramfs unless the kernel reaches it.
DEFAULT_INITRD_ADDRESS = 0x800000
MIB = 1 << 20
#: Bytes 8-31 of every s390x Linux image: the IPL CCWs the firmware checks for.
S390_LINUX_MAGIC = bytes.fromhex("02000018600000500200006860000050") + b"\x40" * 8

ZIPL_MAGIC = b"zIPL"
COMPONENT_HEADER_IPL = 0x00
COMPONENT_LOAD = 0x02
COMPONENT_EXEC = 0x01
#: Blocks per block-range entry (one virtio request each: 8 MiB).
MAX_RUN = 0x4000


class BootDiskError(ConformanceInputError):
    """A boot record cannot be made from these inputs; the message names the input."""


# --- x86_64: the partition table under SYSLINUX's MBR code ---------------------------------


def mbr(boot_code: bytes, partition_sectors: int, partition_type: int, *, disk_id: int = 0x50445631) -> bytes:
    """Sector 0: ``boot_code`` (at most 440 bytes), the disk id, one active partition."""
    if len(boot_code) > 440:
        raise BootDiskError(f"MBR boot code is {len(boot_code)} bytes; at most 440 fit")
    entry = struct.pack(
        "<B3sB3sII",
        0x80,  # active: the MBR code boots this partition
        b"\xfe\xff\xff",  # CHS start: beyond CHS, LBA is used
        partition_type,
        b"\xfe\xff\xff",
        PARTITION_START,
        partition_sectors,
    )
    sector = bytearray(SECTOR)
    sector[: len(boot_code)] = boot_code
    struct.pack_into("<I", sector, 440, disk_id)
    sector[446 : 446 + 16] = entry
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def fat_partition_type(boot_sector: bytes) -> int:
    """The MBR type of a FAT file system, from its boot sector: 0x0e (FAT16, LBA) or 0x0c (FAT32, LBA)."""
    if boot_sector[54:59] in (b"FAT16", b"FAT12"):
        return 0x0E
    if boot_sector[82:87] == b"FAT32":
        return 0x0C
    raise BootDiskError("the partition holds no FAT12/16/32 boot sector")


# --- s390x: the kernel's parameter area and the zipl SCSI-scheme bootmap --------------------


def initrd_address(kernel_size: int) -> int:
    """QEMU's rule for its own ``-initrd``: 8 MiB, moved up in MiB steps past the kernel plus 1 MiB."""
    address = DEFAULT_INITRD_ADDRESS
    while kernel_size + MIB > address:
        address += MIB
    return address


def s390_kernel_with_parameters(kernel: bytes, *, initrd_start: int, initrd_size: int, cmdline: str) -> bytes:
    """The kernel image with the initramfs location and the command line in its parameter area."""
    if len(kernel) < COMMAND_LINE + 1 or kernel[8:32] != S390_LINUX_MAGIC:
        raise BootDiskError("the kernel image is not an s390x Linux image (no IPL magic at bytes 8-31)")
    (limit,) = struct.unpack_from(">Q", kernel, MAX_COMMAND_LINE_SIZE)
    limit = limit or LEGACY_COMMAND_LINE_SIZE
    encoded = cmdline.encode()
    if len(encoded) >= limit:
        raise BootDiskError(f"kernel command line is {len(encoded)} bytes; this kernel takes {limit - 1}")
    image = bytearray(kernel)
    struct.pack_into(">QQ", image, INITRD_START, initrd_start, initrd_size)
    image[COMMAND_LINE : COMMAND_LINE + limit] = encoded.ljust(limit, b"\0")
    return bytes(image)


@dataclass(frozen=True)
class Segment:
    """Bytes the firmware loads into guest memory at ``address``."""

    address: int
    data: bytes


def _block_pointer(block: int, count: int) -> bytes:
    """A ScsiBlockPtr: first block, block size, number of blocks minus one, 4 reserved bytes."""
    return struct.pack(">QHH4x", block, SECTOR, count - 1)


def _component(kind: int, block: int, address: int) -> bytes:
    """A component entry: its block-list pointer (LOAD) or nothing (EXEC), its type, its address."""
    pointer = _block_pointer(block, 1) if block else bytes(16)
    return pointer + bytes(7) + bytes([kind]) + struct.pack(">Q", address)


def zipl_scsi_disk(segments: list[Segment], entry: int) -> bytes:
    """A raw disk the s390-ccw firmware IPLs: the bootmap in blocks 0-2 and one block list per
    segment (from block 3), each segment's data from 1 MiB on, block-aligned."""
    if not segments:
        raise BootDiskError("a zipl bootmap needs at least one segment")
    lists_end = 3 + len(segments)
    if (len(segments) + 2) * 32 > SECTOR or lists_end > PARTITION_START:
        raise BootDiskError(f"{len(segments)} segments do not fit one component table")
    next_block = PARTITION_START
    block_lists: list[bytes] = []
    placed: list[tuple[int, bytes]] = []
    for segment in segments:
        blocks = -(-len(segment.data) // SECTOR)
        runs = [
            _block_pointer(next_block + start, min(MAX_RUN, blocks - start))
            for start in range(0, blocks, MAX_RUN)
        ]
        if len(runs) >= SECTOR // 16:  # the list ends with a zero entry within its one block
            raise BootDiskError(f"segment at {segment.address:#x} ({len(segment.data)} bytes) is too large")
        block_lists.append(b"".join(runs).ljust(SECTOR, b"\0"))
        placed.append((next_block, segment.data))
        next_block += blocks
    header = ZIPL_MAGIC + struct.pack(">I", 1) + bytes(8) + _block_pointer(1, 1)
    program_table = (ZIPL_MAGIC + bytes(12) + _block_pointer(2, 1)).ljust(SECTOR, b"\0")
    components = ZIPL_MAGIC + bytes([COMPONENT_HEADER_IPL]) + bytes(27)
    for index, segment in enumerate(segments):
        components += _component(COMPONENT_LOAD, 3 + index, segment.address)
    components += _component(COMPONENT_EXEC, 0, entry)
    disk = bytearray(next_block * SECTOR)
    disk[0 : len(header)] = header
    disk[SECTOR : 2 * SECTOR] = program_table
    disk[2 * SECTOR : 2 * SECTOR + len(components)] = components
    for index, block_list in enumerate(block_lists):
        disk[(3 + index) * SECTOR : (4 + index) * SECTOR] = block_list
    for block, data in placed:
        disk[block * SECTOR : block * SECTOR + len(data)] = data
    return bytes(disk)


def s390_boot_disk(kernel: bytes, initrd: bytes, cmdline: str) -> bytes:
    """The s390x pod VM's raw boot disk: the kernel (parameters set) at 0, the initramfs above it."""
    address = initrd_address(len(kernel))
    image = s390_kernel_with_parameters(
        kernel, initrd_start=address, initrd_size=len(initrd), cmdline=cmdline
    )
    return zipl_scsi_disk([Segment(0, image), Segment(address, initrd)], KERNEL_ENTRY)
