"""How many pod VMs one LPAR boots at once: given (``--boot-concurrency N``), or measured.

One boot per core does not pay on every machine: emulated s390x guests are CPU-bound (QEMU
TCG, one host thread per vCPU), and on a small or shared host two boots at once can take
longer than two in a row. So by default (or ``--boot-concurrency measure``) the first boot
boots one probe pod VM alone, then as many at once as this process's share of the cores (the
cores shared by the workers bound to the same LPAR), and keeps that concurrency only if it
paid (together faster than :data:`PAYS` of the same boots in a row). A process with one core
to itself measures nothing. The choice is printed with its reason.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sim.errors import ConformanceInputError
from sim.peerpods.providers import InstanceSpec
from sim.peerpods.providers.libvirt_boot import BootQueue

if TYPE_CHECKING:
    from sim.harness.targets.lparhost import LparHost

MEASURE = "measure"
#: Concurrency is kept when k boots at once take less than this share of k boots in a row.
PAYS = 0.85
#: The probe pod VMs: the size of a scenario's pod VM without annotations (LIBVIRT_CPU/MEMORY defaults).
PROBE_VCPUS, PROBE_MEMORY_MIB = 2, 2048
#: Set by the pytest plugin in a worker: how many workers are bound to this worker's LPAR.
SHARE_ENV = "PEERPODS_LPAR_WORKERS"


@dataclass(frozen=True)
class Concurrency:
    count: int
    reason: str


def check_setting(value: str | None) -> str | None:
    """``--boot-concurrency``: a whole number >= 1, or ``measure`` (ConformanceInputError otherwise)."""
    if value is None or value == MEASURE or (value.isdigit() and int(value) >= 1):
        return value
    raise ConformanceInputError(f"--boot-concurrency {value!r}: a whole number >= 1, or {MEASURE}")


def workers_sharing() -> int:
    try:
        return max(1, int(os.environ.get(SHARE_ENV, "1")))
    except ValueError:
        return 1


def choose(lpar: LparHost, setting: str | None) -> Concurrency:
    """The concurrency for ``lpar`` (see the module docstring): ``setting`` None measures, as
    ``measure`` does; printed by the caller."""
    cores = os.cpu_count() or 1
    share = workers_sharing()
    mine = max(1, cores // share)
    shared = f", shared by {share} workers on this LPAR" if share > 1 else ""
    if setting is not None and setting != MEASURE:
        return Concurrency(int(setting), f"--boot-concurrency {setting}")
    if lpar.simulated:
        return Concurrency(mine, "the libvirt simulator boots nothing to measure: one per core")
    if mine == 1:
        return Concurrency(1, f"one core for this process ({cores} cores{shared}): nothing to measure")
    alone = boot_together(lpar, 1)
    together = boot_together(lpar, mine)
    in_a_row = alone * mine
    measured = (
        f"{mine} probe pod VMs at once took {together:.2f} s, "
        f"one alone {alone:.2f} s ({in_a_row:.2f} s in a row)"
    )
    if together < PAYS * in_a_row:
        return Concurrency(mine, f"measured: {measured}")
    return Concurrency(1, f"measured: {measured}; at once does not pay here")


def boot_together(lpar: LparHost, count: int) -> float:
    """Wall seconds until ``count`` probe pod VMs created at once have all reported (then removed)."""
    queue = BootQueue(count)
    provider = lpar.provider(ownership=lpar.ownership, boot_queue=queue)
    start = time.perf_counter()
    specs = [
        InstanceSpec(f"boot-probe{i}", "kube-system", os.urandom(8).hex(), PROBE_VCPUS, PROBE_MEMORY_MIB, "")
        for i in range(count)
    ]
    names = [provider.create_instance(spec) for spec in specs]
    try:
        for name in names:
            provider.wait_ready(name)
        return time.perf_counter() - start
    finally:
        provider.stop_all()
        for name in names:
            provider.delete_instance(name)
        queue.shutdown()


#: What this process has to say about its LPARs' boots at the end of the run (a parallel run's
#: workers send theirs to the controller, see sim.harness.distributed).
NOTES: list[str] = []


def note(text: str) -> None:
    """Say ``text`` at the end of the run: printed now when no test is running (pytest captures
    what a scenario prints), and kept for the controller of a parallel run."""
    NOTES.append(text)
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # a worker's notes reach the console through the controller
        print(f"peerpods-conformance: {text}", file=sys.stderr)
