"""Pod VM boot on the emulated LPAR: the minimal kernel beside Debian's, bare QEMU beside libvirt.

Prints, from one run on this machine, for each prepared pod VM kernel (``lpar prepare
--kernel minimal`` and ``--kernel debian``):

* bare: ``qemu-system-s390x -kernel ... -initrd ...`` of the prepared image, with the same
  cloud-init ISO, vCPUs and memory, from process start to the guest's report line -- the
  physical limit of an emulated s390x guest here;
* libvirt: define-to-report of the same guest through the LibvirtProvider on
  qemu:///system (volumes, ISO upload, domain definition, start, console read);
* parallel: as many independent pod VMs as cores, created at once, wall time until all
  reported;
* stop: from a pod VM's report (its guest then powers off) until libvirt says the domain is
  shut off -- what a scenario with that pod VM waits in its teardown;
* reaping: who reaps libvirtd's QEMU processes, and how long an orphaned process stays a
  zombie under this machine's pid 1 beside under ``tini -s`` (libvirt counts a zombie
  QEMU as running: see sim/lpar/host.py);
* with ``--levers``: bare boots of the minimal kernel varying one thing at a time -- the pod
  VM's memory, QEMU's ``-cpu`` model, a gzip or an uncompressed initramfs, no balloon/RNG
  device -- and 1..4 pod VMs booting at once through libvirt;
* with ``--whole-run``: the wall time of the whole feature run (``peerpods-conformance run
  --target lpar``) on qemu:///system with each kernel, and of the guest features (LP, VM, GI).

Goals on 2 cores: <= 1.5 s per pod VM through libvirt; the whole run on qemu:///system
<= 90 s; the guest features <= 30 s. Other processes on the machine slow every figure.
Usage: python benchmarks/bench_lpar.py [--repeat N] [--levers] [--whole-run]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from plumbum import CommandNotFound, local

from sim.harness.catalogue import load_catalogue
from sim.harness.targets.lpar import LparTarget
from sim.lpar import cidata, host
from sim.lpar.assets import KERNEL_ENV, KERNELS, Assets, AssetsMissing, find_assets
from sim.lpar.console import REPORT_PREFIX
from sim.peerpods.cloudconfig import build_user_data
from sim.peerpods.initdata import encode
from sim.peerpods.providers import InstanceSpec

ROOT = Path(__file__).resolve().parent.parent
TOML = b'algorithm = "sha384"\nversion = "0.1.0"\n\n[data]\n"aa.toml" = "bench"\n'
#: The guest features (every LP, VM and GI requirement of the catalogue), as a pytest marker expression.
GUEST_MARKERS = " or ".join(
    r.id for r in load_catalogue().requirements if r.id.startswith(("LP-", "VM-", "GI-"))
)


def user_data(tag: str) -> str:
    return build_user_data(apf_json="{}", initdata=encode(TOML.replace(b"bench", tag.encode())))


def bare_boot(
    assets: Assets,
    vcpus: int,
    memory_mib: int,
    *,
    cpu: str | None = None,
    initrd: Path | None = None,
    extra_devices: bool = False,
) -> float:
    """Seconds from starting QEMU by hand to the guest's report line on its console."""
    with tempfile.TemporaryDirectory() as tmp:
        iso = Path(tmp) / "cidata.iso"
        iso.write_bytes(cidata.build_nocloud_iso(user_data("bare"), hostname="bare"))
        root = Path(tmp) / "root.qcow2"
        local["qemu-img"]("create", "-q", "-f", "qcow2", str(root), "256M")
        args = [
            "-M", "s390-ccw-virtio", "-nodefaults", "-nographic", "-no-reboot",
            "-smp", str(vcpus), "-m", str(memory_mib),
            "-kernel", str(assets.kernel), "-initrd", str(initrd or assets.initrd), "-append", assets.cmdline,
            "-drive", f"file={root},format=qcow2,if=none,id=vda", "-device", "virtio-blk-ccw,drive=vda",
            "-drive", f"file={iso},format=raw,if=none,id=vdb,readonly=on",
            "-device", "virtio-blk-ccw,drive=vdb",
            "-serial", "none", "-chardev", "stdio,id=c", "-device", "sclpconsole,chardev=c",
        ]  # fmt: skip
        if cpu:
            args += ["-cpu", cpu]
        if extra_devices:  # what libvirt's domain adds: a virtio RNG and a balloon
            args += ["-object", "rng-random,id=rng0,filename=/dev/urandom",
                     "-device", "virtio-rng-ccw,rng=rng0", "-device", "virtio-balloon-ccw"]  # fmt: skip
        start = time.perf_counter()
        process = local["qemu-system-s390x"][args].popen(stdin=subprocess.DEVNULL, text=True)
        assert process.stdout is not None
        elapsed = None
        for line in process.stdout:
            if REPORT_PREFIX in line:
                elapsed = time.perf_counter() - start
                break
        process.kill()
        process.wait()
    if elapsed is None:
        raise RuntimeError(f"the bare guest ({assets.flavour} kernel) printed no report")
    return elapsed


def libvirt_boot(
    target: LparTarget, vcpus: int, memory_mib: int, count: int = 1, stops: list[float] | None = None
) -> tuple[float, list[float]]:
    """Wall seconds for ``count`` pod VMs created at once, and each one's define-to-report.

    ``stops`` gets, for a single pod VM, the seconds from its report until libvirt has it shut off."""
    provider = target.provider()
    start = time.perf_counter()
    names = [
        provider.create_instance(
            InstanceSpec(f"bench{i}", "bench", os.urandom(8).hex(), vcpus, memory_mib, user_data(str(i)))
        )
        for i in range(count)
    ]
    for name in names:
        report = provider.wait_ready(name)
        assert report is not None and report.error is None, report
        if stops is not None and count == 1:
            reported = time.perf_counter()
            domain = target.connection.lookupByName(name)
            while domain.isActive():
                time.sleep(0.002)
            stops.append(time.perf_counter() - reported)
    wall = time.perf_counter() - start
    each = [float(provider.timings(name)["report"] or 0.0) for name in names]
    for name in names:
        provider.delete_instance(name)
    assert provider.leftovers() == []
    return wall, each


#: Forks a child that forks a grandchild and exits; the grandchild, now an orphan, exits
#: 0.1 s later; prints the seconds it then stayed a zombie before whoever adopted it reaped it.
_ORPHAN = """
import os, sys, time
r, w = os.pipe()
child = os.fork()
if child == 0:
    grandchild = os.fork()
    if grandchild == 0:
        time.sleep(0.1)
        os._exit(0)
    os.write(w, str(grandchild).encode())
    os._exit(0)
os.waitpid(child, 0)
pid, exited = int(os.read(r, 32)), None
deadline = time.monotonic() + 10
while time.monotonic() < deadline:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            zombie = stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        break
    if zombie and exited is None:
        exited = time.monotonic()
    time.sleep(0.001)
print(f"{0.0 if exited is None else time.monotonic() - exited:.3f}")
"""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def reaping(repeat: int) -> None:
    """Who adopts libvirtd's QEMU processes, and how long an orphan stays a zombie here."""
    try:
        libvirtd = int(Path("/run/libvirtd.pid").read_text().strip())
        parent = int(Path(f"/proc/{libvirtd}/stat").read_text().rsplit(")", 1)[1].split()[1])
        print(f"libvirtd (pid {libvirtd}) runs under {_comm(parent)} (pid {parent}); pid 1 is {_comm(1)}")
    except (OSError, ValueError, IndexError):
        print("libvirtd: not found (/run/libvirtd.pid)")
    python = local[sys.executable]["-c", _ORPHAN]
    runs: dict[str, list[float]] = {f"adopted by pid 1 ({_comm(1)})": [], "adopted by tini -s": []}
    try:
        tini = local[host.REAPER]["-s", "--", sys.executable, "-c", _ORPHAN]
    except CommandNotFound:
        tini = None
    for _ in range(repeat):  # interleaved
        runs[f"adopted by pid 1 ({_comm(1)})"].append(float(python()))
        if tini is not None:
            runs["adopted by tini -s"].append(float(tini()))
    for label, values in runs.items():
        if values:
            print(
                f"  an orphan's zombie, {label:36} median {statistics.median(values):.3f} s  ({_fmt(values)})"
            )
        else:
            print(f"  an orphan's zombie, {label:36} (tini not installed)")


def feature_run(kernel: str, markers: str | None) -> tuple[float, str]:
    """Wall seconds of ``peerpods-conformance run --target lpar`` on qemu:///system."""
    with tempfile.TemporaryDirectory() as reports:
        command = local[str(Path(sys.executable).with_name("peerpods-conformance"))][
            "run", "--target", "lpar", "--libvirt-uri", host.SYSTEM_URI, "--report-dir", reports
        ]  # fmt: skip
        if markers:
            command = command["-m", markers]
        start = time.perf_counter()
        returncode, stdout, stderr = command.with_cwd(ROOT).with_env(**{KERNEL_ENV: kernel}).run(retcode=None)
        elapsed = time.perf_counter() - start
        failed = _failed(Path(reports) / "summary.json")
    lines = (stdout.strip() or stderr.strip()).splitlines() or ["(no output)"]
    counts = next((line for line in lines if "scenarios:" in line), lines[-1])  # "N passed, ... not run"
    summary = f"exit {returncode}: {counts.split('scenarios:', 1)[-1].strip()[:90]}"
    return elapsed, summary + "".join(f"\n    failed: {line}" for line in failed)


def _failed(summary: Path) -> list[str]:
    """Each failed scenario and the first line of its reason (from the run's summary.json)."""
    try:
        scenarios = json.loads(summary.read_text())["scenarios"]
    except (OSError, ValueError, KeyError):
        return []
    return [
        f"{s['scenario']}: {str(s.get('reason') or '').splitlines()[0][:160] if s.get('reason') else ''}"
        for s in scenarios
        if s.get("outcome") == "failed"
    ]


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _verdict(value: float, goal: float) -> str:
    return "met" if value <= goal else "MISSED"


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--vcpus", type=int, default=2, help="LIBVIRT_CPU default")
    parser.add_argument("--memory", type=int, default=8192, help="LIBVIRT_MEMORY default (MiB)")
    parser.add_argument("--levers", action="store_true", help="also measure memory, -cpu, initramfs, devices")
    parser.add_argument("--whole-run", action="store_true", help="also time the feature runs per kernel")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    kernels: dict[str, Assets] = {}
    for kernel in KERNELS:
        try:
            kernels[kernel] = find_assets(kernel=kernel)
        except AssetsMissing as exc:
            print(f"({kernel} kernel not prepared: {exc})")
    load = os.getloadavg()[0]
    print(f"pod VM: {args.vcpus} vCPUs, {args.memory} MiB, {args.repeat} runs each, {cores} cores")
    print(f"host load average at the start: {load:.1f} (other processes slow every figure)")
    reaping(args.repeat)
    header = f"{'bare QEMU median':>17} {'libvirt median':>15} {'ratio':>6}"
    print(f"{'kernel':8} {header}  {cores} at once  report->stopped  runs (bare | libvirt)")
    medians: dict[str, float] = {}
    for kernel, assets in kernels.items():
        target = LparTarget(host.SYSTEM_URI, kernel=kernel)
        try:
            bare: list[float] = []
            single: list[float] = []
            stops: list[float] = []
            for _ in range(args.repeat):  # interleaved, so a busy moment of the host hits both alike
                bare.append(bare_boot(assets, args.vcpus, args.memory))
                single.append(libvirt_boot(target, args.vcpus, args.memory, stops=stops)[1][0])
            wall, _ = libvirt_boot(target, args.vcpus, args.memory, count=cores)
        finally:
            target.close()
        bare_median, libvirt_median = statistics.median(bare), statistics.median(single)
        medians[kernel] = libvirt_median
        print(
            f"{kernel:8} {bare_median:15.2f} s {libvirt_median:13.2f} s {libvirt_median / bare_median:5.2f}x"
            f"  {wall:7.2f} s  {statistics.median(stops):13.2f} s  ({_fmt(bare)} | {_fmt(single)})"
            f"  goal <= 1.5 s: {_verdict(libvirt_median, 1.5)}"
        )
    if len(medians) == 2:
        speedup = medians["debian"] / medians["minimal"]
        print(f"minimal kernel vs Debian's through libvirt: {speedup:.1f}x faster")
    if args.levers and "minimal" in kernels:
        levers(kernels["minimal"], args.vcpus, args.memory, args.repeat)
    if args.whole_run:
        for kernel in kernels:
            for label, markers, goal in (("whole run", None, 90.0), ("guest features", GUEST_MARKERS, 30.0)):
                elapsed, summary = feature_run(kernel, markers)
                print(
                    f"{label:15} on qemu:///system, {kernel:7} kernel {elapsed:7.1f} s "
                    f"(goal <= {goal:g} s: {_verdict(elapsed, goal)}; {summary})"
                )
    return 0


def levers(assets: Assets, vcpus: int, memory: int, repeat: int) -> None:
    """Bare boots of the minimal kernel's image, one thing changed at a time.

    The variants take turns (round after round), so a change in the host's load hits all alike."""
    with tempfile.TemporaryDirectory() as tmp:
        data = assets.initrd.read_bytes()
        prepared = "gzip" if data[:2] == b"\x1f\x8b" else "uncompressed"
        other = Path(tmp) / "initrd.other"
        other.write_bytes(gzip.decompress(data) if prepared == "gzip" else gzip.compress(data, 6, mtime=0))
        sizes = f"{len(data) >> 10} KiB {prepared}, {other.stat().st_size >> 10} KiB otherwise"
        variants: dict[str, dict[str, Any]] = {
            f"as prepared ({prepared} initramfs, {memory} MiB, {vcpus} vCPUs)": {},
            f"initramfs {'uncompressed' if prepared == 'gzip' else 'gzip'} ({sizes})": {"initrd": other},
            "-cpu qemu": {"cpu": "qemu"},
            "-cpu max": {"cpu": "max"},
            "+ virtio RNG and balloon (as the domain has)": {"extra_devices": True},
            "memory 2048 MiB": {"memory_mib": 2048},
            "memory 512 MiB": {"memory_mib": 512},
            "1 vCPU": {"vcpus": 1},
        }
        runs: dict[str, list[float]] = {label: [] for label in variants}
        for _ in range(repeat):
            for label, change in variants.items():
                options: dict[str, Any] = {"vcpus": vcpus, "memory_mib": memory, **change}
                runs[label].append(bare_boot(assets, **options))
    print(f"levers (bare QEMU, minimal kernel, median of {repeat}, variants interleaved):")
    for label, values in runs.items():
        print(f"  {label:62} {statistics.median(values):6.2f} s  ({_fmt(values)})")
    target = LparTarget(host.SYSTEM_URI, kernel="minimal")
    try:
        for count in (1, 2, 3, 4):
            wall, each = libvirt_boot(target, vcpus, memory, count=count)
            print(f"  {count} pod VMs at once through libvirt: all reported in {wall:6.2f} s ({_fmt(each)})")
    finally:
        target.close()


if __name__ == "__main__":
    sys.exit(main())
