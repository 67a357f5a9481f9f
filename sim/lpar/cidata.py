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
    """The ``user-data`` text on a cidata disk; ``where`` names the disk in errors."""
    iso = pycdlib.PyCdlib()
    try:
        iso.open_fp(io.BytesIO(iso_bytes))
    except pycdlib.pycdlibexception.PyCdlibException as exc:
        raise TargetError(f"{where}: not an ISO 9660 cloud-init disk ({exc})") from None
    try:
        label = iso.pvd.volume_identifier.decode().strip()
        if label.lower() != VOLUME_LABEL:
            raise TargetError(f"{where}: volume label is {label!r}, not {VOLUME_LABEL!r}")
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path="/" + USER_DATA)
        return out.getvalue().decode()
    finally:
        iso.close()
