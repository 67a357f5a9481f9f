"""Scale-out: serial runs beside ``run --workers N`` runs, side by side in one go.

Prints, from one run on this machine (and the load it ran under):

* reference target, the whole catalogue: serial beside ``--workers 2`` -- the overhead of the
  workers (their start, each collecting the features) where every scenario costs milliseconds;
* lpar target on qemu:///system, the guest features (every LP, VM, GI requirement; real
  s390x pod VMs): serial beside ``--workers 2``; ``--whole-run`` adds the whole catalogue;
* with ``--two-daemons``: the same guest features on two LPARs, qemu:///system and a private
  libvirtd of the suite's (:class:`~sim.lpar.isolated.IsolatedLpar`), one worker each;
* the memory of each process (controller, each worker): peak RSS, sampled every 0.2 s;
* with ``--one-core-lpar``: a slower LPAR, where two boots at once take as long as two in a row
  (qemu:///system's pod VMs confined to one core through the cgroup v1 cpuset of libvirt's
  ``machine`` partition, restored afterwards): the guest features serially with two boots at
  once, against the measured default, and the whole run against its pod VMs' serial boot time
  (the sum of their boots, one at a time);
* the CPU time the whole machine spent during each run (every process: the suite, libvirtd, the
  QEMUs), and from it the floor no run on these cores can go below (CPU seconds / cores) and
  the largest speed-up it leaves (serial wall time / that floor).

Each scenario's cost is the serial wall time over the scenarios run. Usage:
``python benchmarks/bench_scale.py [--whole-run] [--two-daemons] [--one-core-lpar] [--skip-lpar]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sim.harness.catalogue import load_catalogue

ROOT = Path(__file__).resolve().parents[1]
#: The serial lpar baseline's boot concurrency: one per core, given rather than measured.
FAIR_SERIAL = ("--boot-concurrency", str(os.cpu_count() or 1))
GUEST_MARKERS = " or ".join(
    r.id for r in load_catalogue().requirements if r.id.startswith(("LP-", "VM-", "GI-"))
)


@dataclass
class Measured:
    label: str
    seconds: float
    exit: int
    scenarios: int
    counts: dict[str, int]
    #: process label -> peak RSS in MiB
    rss: dict[str, float] = field(default_factory=dict)
    #: CPU seconds the whole machine spent (not idle) while the run ran
    cpu_seconds: float = 0.0
    #: what the run said of its LPARs' pod VM boots (one line per LPAR and worker)
    boots: list[str] = field(default_factory=list)

    def booting_seconds(self) -> float:
        """The run's pod VMs' boot time summed (each line's "N s in all")."""
        found = (re.search(r"([0-9.]+) s in all", line) for line in self.boots)
        return sum(float(m.group(1)) for m in found if m)


def _busy_seconds() -> float:
    """CPU seconds this machine has spent busy since boot, all cores (/proc/stat: all but idle, iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _label(pid: int, root: int) -> str | None:
    if pid == root:
        return "controller"
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if "python" not in cmdline.split(" ")[0]:
        return None  # qemu, libvirt helpers: not the suite's processes
    return f"worker {pid}"


def run(label: str, report_dir: Path, *args: str) -> Measured:
    """One ``peerpods-conformance run``, timed, its processes' memory sampled."""
    argv = [sys.executable, "-m", "sim", "run", "--report-dir", str(report_dir), *args]
    busy_before = _busy_seconds()
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks: dict[int, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            pending, seen = [process.pid], set()
            while pending:
                pid = pending.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                name = _label(pid, process.pid)
                if name is not None:
                    rss = _rss_mib(pid)
                    peaks[pid] = (name, max(rss, peaks.get(pid, (name, 0.0))[1]))
                    pending += _children(pid)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate(timeout=3600)
    seconds = time.perf_counter() - start
    cpu_seconds = _busy_seconds() - busy_before
    done.set()
    sampler.join()
    if process.returncode not in (0, 1, 3):
        print(output[-3000:], file=sys.stderr)
    summary_path = report_dir / "summary.json"
    counts: dict[str, int] = {}
    scenarios = 0
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
        counts = summary["counts"]["scenarios"]
        scenarios = len(summary["scenarios"])
    rss = {name: mib for name, mib in sorted(peaks.values()) if mib > 0}
    said = (line.split("peerpods-conformance: ", 1)[-1] for line in output.splitlines())
    boots = [line for line in said if "pod VM boots on" in line]
    return Measured(label, seconds, process.returncode, scenarios, counts, rss, cpu_seconds, boots)


def show(serial: Measured, parallel: Measured, *more: Measured) -> None:
    cores = os.cpu_count() or 1
    for measured in (serial, parallel, *more):
        counts = ", ".join(f"{n} {word}" for word, n in measured.counts.items() if n)
        used = measured.cpu_seconds / (measured.seconds * cores) if measured.seconds else 0.0
        print(
            f"  {measured.label:34} {measured.seconds:7.1f} s  exit {measured.exit}  ({counts}); "
            f"CPU {measured.cpu_seconds:.1f} s, {used:.0%} of {cores} cores"
        )
    ratio = serial.seconds / parallel.seconds if parallel.seconds else 0.0
    per = serial.seconds / serial.scenarios if serial.scenarios else 0.0
    print(f"  speed-up {ratio:.2f}x; serial cost per scenario {per:.2f} s")
    floor = parallel.cpu_seconds / cores
    if floor:
        print(
            f"  CPU floor of the parallel run on {cores} cores: {floor:.1f} s "
            f"(its CPU time / cores), so at most {serial.seconds / floor:.2f}x"
        )
    for measured in more:
        print(f"  {measured.label}: {serial.seconds / measured.seconds:.2f}x against serial")
    workers = [mib for name, mib in parallel.rss.items() if name != "controller"]
    if workers:
        print(
            f"  memory: controller {parallel.rss.get('controller', 0):.0f} MiB, "
            f"{len(workers)} workers {min(workers):.0f}-{max(workers):.0f} MiB each (peak RSS); "
            f"serial {serial.rss.get('controller', 0):.0f} MiB"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--whole-run", action="store_true", help="also the whole catalogue on qemu:///system")
    parser.add_argument(
        "--two-daemons", action="store_true", help="also two LPARs: system + a private libvirtd"
    )
    parser.add_argument(
        "--one-core-lpar",
        action="store_true",
        help="also a slower LPAR: qemu:///system's pod VMs on one core (needs root and cgroup v1 cpuset)",
    )
    parser.add_argument("--skip-lpar", action="store_true", help="only the reference target")
    args = parser.parse_args()
    print(f"cores {os.cpu_count()}; load average before {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        base = Path(tmp)
        print("reference target, whole catalogue:")
        show(
            run("serial", base / "ref-serial", "--target", "reference"),
            run("--workers 2", base / "ref-par", "--target", "reference", "--workers", "2"),
        )
        if not args.skip_lpar:
            selections = [("guest features (LP, VM, GI)", ["--tags", GUEST_MARKERS])]
            if args.whole_run:
                selections.append(("whole catalogue", []))
            lpar = ["--target", "lpar", "--libvirt-uri", "qemu:///system"]
            for name, selection in selections:
                print(f"lpar target on qemu:///system, {name}:")
                # the serial baseline skips the measurement at its first boot (two probe boots,
                # 2-3 s) and boots two at once, which the measurement chooses on these 2 cores;
                # a worker with one core to itself measures nothing, so both sides pay the same
                serial = run("serial", base / f"lpar-serial-{len(name)}", *lpar, *selection, *FAIR_SERIAL)
                parallel = run(
                    "--workers 2", base / f"lpar-par-{len(name)}", *lpar, "--workers", "2", *selection
                )
                three = run(  # one worker more than cores: fills the waits (libvirt, the guests' I/O)
                    "--workers 3", base / f"lpar-par3-{len(name)}", *lpar, "--workers", "3", *selection
                )
                show(serial, parallel, three)
                if args.two_daemons:
                    alone, alone_two, two = two_daemons(base, selection)
                    print("  the private libvirtd alone (is it the daemon, or the parallelism?):")
                    show(alone, alone_two)
                    for measured, against in ((alone, serial), (two, serial), (two, alone)):
                        ratio = against.seconds / measured.seconds if measured.seconds else 0.0
                        print(
                            f"  {measured.label:34} {measured.seconds:7.1f} s  exit {measured.exit}; "
                            f"{ratio:.2f}x against {against.label}"
                        )
            if args.one_core_lpar:
                one_core_lpar(base, lpar, selections[0][1])
    print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


#: libvirt's cgroup v1 cpuset partition for the domains of qemu:///system (no systemd here)
MACHINE_CPUSET = Path("/sys/fs/cgroup/cpuset/machine/cpuset.cpus")


@contextlib.contextmanager
def pod_vms_on_one_core() -> Iterator[str | None]:
    """Confine qemu:///system's domains to the first core for the block; yields None, or why not."""
    if not MACHINE_CPUSET.is_file() or not os.access(MACHINE_CPUSET, os.W_OK):
        yield f"{MACHINE_CPUSET} is missing or not writable (needs root and libvirt's cgroup v1 cpuset)"
        return
    before = MACHINE_CPUSET.read_text().strip()
    MACHINE_CPUSET.write_text(before.split(",")[0].split("-")[0])
    try:
        yield None
    finally:
        MACHINE_CPUSET.write_text(before)


def one_core_lpar(base: Path, lpar: list[str], selection: list[str]) -> None:
    """The guest features serially on an LPAR whose pod VMs share one core: two boots at once
    (one per core of the machine, the default before measuring) against the measured default."""
    print("a slower LPAR: qemu:///system's pod VMs on one core, guest features, serial:")
    with pod_vms_on_one_core() as why_not:
        if why_not is not None:
            print(f"  not measured: {why_not}")
            return
        runs = [
            run("--boot-concurrency 2", base / "one-core-2", *lpar, "--boot-concurrency", "2", *selection),
            run("measured (the default)", base / "one-core-m", *lpar, *selection),
        ]
    for measured in runs:
        counts = ", ".join(f"{n} {word}" for word, n in measured.counts.items() if n)
        print(f"  {measured.label:34} {measured.seconds:7.1f} s  exit {measured.exit}  ({counts})")
        for line in measured.boots:
            print(f"    {line}")
    serial_boots = runs[1].booting_seconds()
    if serial_boots:
        print(
            f"  its pod VMs' serial boot time {serial_boots:.1f} s (the measured run's boots, one at a "
            f"time); the whole run took {runs[1].seconds / serial_boots:.2f}x that, "
            f"with two at once {runs[0].seconds / serial_boots:.2f}x"
        )


def two_daemons(base: Path, selection: list[str]) -> tuple[Measured, Measured, Measured]:
    """The private libvirtd alone (serial, then 2 workers), then both LPARs with a worker each."""
    from sim.lpar import isolated
    from sim.lpar.isolated import IsolatedLpar

    lpar_base = isolated.default_base() / f"bench-{uuid.uuid4().hex[:8]}"
    lpar_base.mkdir(parents=True, mode=0o755)
    try:
        with IsolatedLpar(base=lpar_base) as private:
            alone = ["--target", "lpar", "--libvirt-uri", private.uri, *selection]
            return (
                run("private libvirtd, serial", base / f"alone-{uuid.uuid4().hex[:4]}", *alone, *FAIR_SERIAL),
                run(
                    "private, --workers 2", base / f"alone2-{uuid.uuid4().hex[:4]}", *alone, "--workers", "2"
                ),
                run(
                    "two LPARs (system + private), 2 workers",
                    base / f"two-{uuid.uuid4().hex[:4]}",
                    *["--target", "lpar", "--libvirt-uri", "qemu:///system", "--libvirt-uri", private.uri],
                    *selection,
                ),
            )
    finally:
        shutil.rmtree(lpar_base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
