"""The IBM Z KVM host of the emulated LPAR, for an adaptor that asks libvirt what host it is on.

CAA's libvirt provider picks its pod VM's domain by libvirt's node model: an ``s390x`` host
gets an s390x domain of type ``kvm`` with ``<cpu mode='host-model'>``. The emulated LPAR is
an x86_64 machine running s390x guests under QEMU's TCG, so an unmodified adaptor would
create x86_64 pod VMs, and its s390x domain would be refused. ``ibmz_kvm_host.c`` (shipped
beside this module) is the piece of the LPAR emulation that closes the gap: preloaded into
the adaptor's process only, it reports the node model ``s390x`` and runs an s390x ``kvm``
domain as ``qemu`` with QEMU's TCG CPU model (its comment says exactly what it changes).
It stands for the IBM Z host; it does not change the system under test.

The library is compiled with gcc against libvirt's headers into the LPAR cache
(``<cache>/ibmz-kvm-host-<sha256 of the source>/``), once per source version.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from plumbum import local

from sim.errors import ConformanceInputError
from sim.lpar.assets import default_cache_dir

SOURCE = Path(__file__).resolve().parent / "ibmz_kvm_host.c"
LIBRARY = "libpeerpods-ibmz-kvm-host.so"
#: Where libvirt's development headers are looked for when pkg-config does not know libvirt.
HEADER = Path("/usr/include/libvirt/libvirt.h")
PRELOAD = "LD_PRELOAD"
INSTALL_HINT = "apt-get install gcc libvirt-dev pkg-config"


class HostLayerUnavailable(ConformanceInputError):
    """The IBM Z host layer cannot be built here; the message names what is missing."""


def source_digest(source: Path = SOURCE) -> str:
    """SHA-256 of the C source: the cache key of the compiled library."""
    return hashlib.sha256(source.read_bytes()).hexdigest()


def _libvirt_cflags() -> list[str]:
    """pkg-config's flags for libvirt, or the default include path when its header is there."""
    pkg_config = shutil.which("pkg-config")
    if pkg_config is not None:
        returncode, stdout, _ = local[pkg_config]["--cflags", "libvirt"].run(retcode=None)
        if returncode == 0:
            return str(stdout).split()
    if HEADER.is_file():
        return []
    raise HostLayerUnavailable(
        f"the IBM Z host layer needs libvirt's headers ({HEADER} or pkg-config's libvirt): {INSTALL_HINT}"
    )


def ibmz_host_library(cache: Path | None = None) -> Path:
    """The compiled IBM Z host layer (built on first use), to put in the adaptor's LD_PRELOAD."""
    digest = source_digest()
    directory = (cache or default_cache_dir()) / f"ibmz-kvm-host-{digest[:16]}"
    library = directory / LIBRARY
    if library.is_file():
        return library
    gcc = shutil.which("gcc")
    if gcc is None:
        raise HostLayerUnavailable(f"the IBM Z host layer is C and gcc is not installed: {INSTALL_HINT}")
    flags = _libvirt_cflags()
    directory.mkdir(parents=True, exist_ok=True)
    # compiled beside its final name, then renamed: a concurrent run never loads half a file
    handle, partial = tempfile.mkstemp(dir=directory, prefix=".build-", suffix=".so")
    os.close(handle)
    command = local[gcc][
        "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", *flags, "-o", partial, str(SOURCE), "-ldl"
    ]  # fmt: skip
    returncode, _, stderr = command.run(retcode=None)
    if returncode != 0:
        Path(partial).unlink(missing_ok=True)
        raise HostLayerUnavailable(
            f"gcc could not build the IBM Z host layer from {SOURCE} ({returncode}): "
            f"{str(stderr).strip()[-800:]}; {INSTALL_HINT}"
        )
    Path(partial).chmod(0o755)
    Path(partial).replace(library)
    return library


def preload_environment(library: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: none) with ``library`` first in LD_PRELOAD, for the adaptor's process only."""
    merged = dict(env or {})
    already = merged.get(PRELOAD, "")
    merged[PRELOAD] = f"{library}:{already}" if already else str(library)
    return merged
