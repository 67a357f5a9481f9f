"""The emulated LPAR's libvirt failing half-way through making a pod VM, for any adaptor.

A real LPAR's libvirt fails now and then in the middle of a pod VM's creation (a full pool,
a restarted daemon, a refused definition); what the adaptor then leaves behind is VM-007's
subject. ``libvirt_faults.c`` (shipped beside this module) is the piece of the LPAR
emulation that makes it happen on request: preloaded into the adaptor's process only, it
fails the n-th call of one libvirt operation there, with a libvirt error whose message says
"injected". It sits in front of libvirt, not inside the adaptor, so the suite's reference
adaptor and a user's build of upstream's ``cloud-api-adaptor`` meet the same failure.

A pod VM is made, by CAA's libvirt provider (``src/cloud-providers/libvirt/libvirt.go``
``CreateDomain``) and by the reference alike, as: the root volume
(``virStorageVolCreateXML``, a qcow2 backed by LIBVIRT_VOL_NAME), the cloud-init ISO volume
(``virStorageVolCreateXML``, then its upload), the definition (``virDomainDefineXML``) and
the start (``virDomainCreate``). Hence :data:`STEPS`: the creation step -> the operation and
which of its calls fails, counted in a freshly started adaptor that makes one pod VM.
"""

from __future__ import annotations

from pathlib import Path

from sim.errors import ConformanceInputError
from sim.lpar import preload

__all__ = ["STEPS", "VARIABLE", "FaultLayerUnavailable", "fault_environment", "libvirt_faults_library"]

SOURCE = Path(__file__).resolve().parent / "libvirt_faults.c"
LIBRARY = "libpeerpods-libvirt-faults.so"
#: Read by the library in the adaptor's process: ``<operation>:<n>``.
VARIABLE = "PEERPODS_LPAR_LIBVIRT_FAULT"
#: Creation step -> (operation, its call that fails), in a pod VM's creation order.
STEPS: dict[str, tuple[str, int]] = {
    "root-volume": ("volume-create", 1),
    "cidata-volume": ("volume-create", 2),
    "define": ("domain-define", 1),
    "start": ("domain-start", 1),
}


class FaultLayerUnavailable(preload.LayerUnavailable):
    """The libvirt fault layer cannot be built here; the message names what is missing."""


def libvirt_faults_library(cache: Path | None = None) -> Path:
    """The compiled fault layer (built on first use), to put in the adaptor's LD_PRELOAD."""
    return preload.build(
        SOURCE, LIBRARY, "libvirt-faults", cache, what="the libvirt fault layer", error=FaultLayerUnavailable
    )


def fault_environment(step: str, library: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the fault layer first in LD_PRELOAD, asked to fail the pod VM's ``step``
    (one of :data:`STEPS`) in the process that gets it."""
    if step not in STEPS:
        raise ConformanceInputError(f"unknown creation step {step!r} (known: {', '.join(STEPS)})")
    operation, call = STEPS[step]
    return {**preload.preload_environment(library, env), VARIABLE: f"{operation}:{call}"}
