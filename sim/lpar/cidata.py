"""The NoCloud cloud-init disk ("cidata" ISO 9660) that carries a pod VM's user data.

CAA's libvirt provider attaches an ISO labelled ``cidata`` holding ``user-data`` and
``meta-data``; building the same kind of disk (with pycdlib, a maintained ISO library)
lets the real guest find it as cloud-init would, by its label. Reading it back is how the
test driver, which boots nothing, learns exactly what was attached.
"""

from __future__ import annotations

import io

import pycdlib

from sim.errors import TargetError

VOLUME_LABEL = "cidata"
USER_DATA = "user-data"
META_DATA = "meta-data"


def _iso_name(name: str) -> str:
    """The plain ISO 9660 name under the Rock Ridge and Joliet names readers prefer."""
    return "/" + name.upper().replace("-", "_") + ".;1"


def build_nocloud_iso(user_data: str, *, hostname: str) -> bytes:
    """An ISO with ``user-data`` and ``meta-data`` (``local-hostname``), labelled cidata."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    files = {USER_DATA: user_data.encode(), META_DATA: f"local-hostname: {hostname}\n".encode()}
    for name, data in files.items():
        iso.add_fp(io.BytesIO(data), len(data), _iso_name(name), rr_name=name, joliet_path="/" + name)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def read_user_data(iso_bytes: bytes, *, where: str) -> str:
    """The ``user-data`` text on a cidata disk; ``where`` names the disk in errors.

    pycdlib reads the disks the suite writes. CAA writes its own with kdomanski/iso9660, which
    leaves the path tables empty: pycdlib refuses those, so they are read from their root
    directory's records (:func:`_root_file`), as the guest's kernel reads them."""
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(iso_bytes))
    except (pycdlib.pycdlibexception.PyCdlibException, IndexError) as exc:
        label, text = _root_file(iso_bytes, USER_DATA, where=where, why=str(exc) or type(exc).__name__)
        if label.lower() != VOLUME_LABEL:
            raise TargetError(f"{where}: volume label is {label!r}, not {VOLUME_LABEL!r}") from None
        return text
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        if label.lower() != VOLUME_LABEL:
            raise TargetError(f"{where}: volume label is {label!r}, not {VOLUME_LABEL!r}")
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path="/" + USER_DATA)
        return out.getvalue().decode()
    finally:
        iso.close()


SECTOR = 2048


def _root_file(data: bytes, name: str, *, where: str, why: str) -> tuple[str, str]:
    """(volume label, text of file ``name``) from an ISO 9660 image's primary volume descriptor
    (sector 16) and root directory records, names compared as Linux's isofs shows them
    (case folded, ``;1`` and a trailing dot dropped, ``_`` for ``-`` where the writer mapped it)."""
    pvd = data[16 * SECTOR : 17 * SECTOR]
    if len(pvd) < SECTOR or pvd[0:6] != b"\x01CD001":
        raise TargetError(f"{where}: not an ISO 9660 cloud-init disk ({why})")
    label = pvd[40:72].decode("ascii", "replace").strip()
    root = pvd[156:190]
    extent, size = int.from_bytes(root[2:6], "little"), int.from_bytes(root[10:14], "little")
    wanted = {name.lower(), name.lower().replace("-", "_")}
    offset, end = extent * SECTOR, extent * SECTOR + size
    while offset < end:
        length = data[offset]
        if length == 0:  # records do not cross sectors: go on at the next one
            offset = (offset // SECTOR + 1) * SECTOR
            continue
        record = data[offset : offset + length]
        raw = record[33 : 33 + record[32]].decode("ascii", "replace")
        shown = raw.split(";", 1)[0].rstrip(".").lower()
        if shown in wanted and not record[25] & 0x02:  # a file, not a directory
            start, count = int.from_bytes(record[2:6], "little"), int.from_bytes(record[10:14], "little")
            return label, data[start * SECTOR : start * SECTOR + count].decode()
        offset += length
    raise TargetError(f"{where}: the cloud-init disk has no {name}")
