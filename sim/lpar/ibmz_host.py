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

from pathlib import Path

from sim.lpar import preload
from sim.lpar.preload import HEADER, INSTALL_HINT, PRELOAD, LayerUnavailable, preload_environment

__all__ = [
    "HEADER",
    "INSTALL_HINT",
    "PRELOAD",
    "HostLayerUnavailable",
    "ibmz_host_library",
    "preload_environment",
    "source_digest",
]

SOURCE = Path(__file__).resolve().parent / "ibmz_kvm_host.c"
LIBRARY = "libpeerpods-ibmz-kvm-host.so"


class HostLayerUnavailable(LayerUnavailable):
    """The IBM Z host layer cannot be built here; the message names what is missing."""


def source_digest(source: Path = SOURCE) -> str:
    """SHA-256 of the C source: the cache key of the compiled library."""
    return preload.source_digest(source)


def ibmz_host_library(cache: Path | None = None) -> Path:
    """The compiled IBM Z host layer (built on first use), to put in the adaptor's LD_PRELOAD."""
    return preload.build(
        SOURCE, LIBRARY, "ibmz-kvm-host", cache, what="the IBM Z host layer", error=HostLayerUnavailable
    )
