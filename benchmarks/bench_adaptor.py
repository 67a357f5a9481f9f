"""The adaptor target beside the lpar target, and a pod VM from CreateVM to ready, in one run.

Prints, measured back to back on this machine:

* whole runs: ``run --target lpar`` and ``run --target adaptor`` (the reference adaptor as a
  process, called over ttrpc) on the same libvirt URI (``--libvirt-uri``, default
  qemu:///system), and the adaptor target in its own isolated LPAR (no ``--libvirt-uri``);
  wall time, and the summed time of the scenarios both targets judged (from junit.xml), with
  the ratio adaptor / lpar (goal <= 1.5);
* pod VMs: CreateVM + StartVM until ready, one pod VM after another (``--pods`` of them),
  through the adaptor target: the reference adaptor on the IBM Z host (s390x under TCG), the
  same on the native host (x86_64 under KVM, as CAA makes it there; only where KVM runs an
  ordinary x86_64 guest), and, with ``--adaptor-binary``, that adaptor (e.g. upstream's CAA)
  on the IBM Z host; beside the lpar target's define-to-report of the same pods.

Usage: python benchmarks/bench_adaptor.py [--libvirt-uri URI] [--pods N] [--adaptor-binary PATH]
       [--skip-whole-runs]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from junitparser import JUnitXml

from sim.harness.targets.adaptor import AdaptorTarget
from sim.harness.targets.base import Environment, Nodes, PodVMs, need
from sim.harness.targets.lpar import LparTarget
from sim.lpar.diskboot import x86_accelerator

ROOT = Path(__file__).resolve().parent.parent


def whole_run(args: list[str], report: Path) -> tuple[float, dict[str, float], str]:
    """Wall time, each passed scenario's time, and the closing verdict line."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sim", "run", "--report-dir", str(report), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - started
    times: dict[str, float] = {}
    junit = report / "junit.xml"
    if junit.exists():
        for suite in JUnitXml.fromfile(str(junit)):
            for case in suite:
                if not case.result:  # passed
                    times[f"{case.classname}::{case.name}"] = float(case.time or 0.0)
    verdict = next(
        (line for line in done.stdout.splitlines() if line.startswith("peerpods-conformance:")), ""
    )
    return wall, times, verdict or done.stderr.strip()[-200:]


def peer_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "bench"},
        "spec": {"runtimeClassName": "kata-remote", "containers": [{"name": "app", "image": "nginx"}]},
    }


def pod_vm_times(make_env: Callable[[], Environment], pods: int) -> list[float]:
    """Seconds from submitting each peer pod until its guest reported, one at a time (the lpar
    target starts the boot and runs the pod at once; an adaptor's StartVM waits for it)."""
    env = make_env()
    times = []
    try:
        env.create_namespace("bench")
        need(env, Nodes).add_node("worker-0")
        for index in range(pods):
            started = time.monotonic()
            outcome = env.create_pod(peer_pod(f"p{index}"))
            if outcome.phase != "Running":
                raise SystemExit(f"pod p{index} did not run: {outcome.reason}")
            need(env, PodVMs).guest_report("bench", f"p{index}")
            times.append(time.monotonic() - started)
            env.delete_pod("bench", f"p{index}")
    finally:
        env.close()
    return times


def describe(times: list[float]) -> str:
    low, high = min(times), max(times)
    return f"median {statistics.median(times):.2f} s (min {low:.2f}, max {high:.2f}, n={len(times)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libvirt-uri", default="qemu:///system")
    parser.add_argument("--pods", type=int, default=3)
    parser.add_argument("--adaptor-binary", type=Path, default=None)
    parser.add_argument("--skip-whole-runs", action="store_true")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)")

    if not args.skip_whole_runs:
        with tempfile.TemporaryDirectory(prefix="bench-adaptor-") as tmp:
            lpar = whole_run(["--target", "lpar", "--libvirt-uri", args.libvirt_uri], Path(tmp) / "lpar")
            adaptor = whole_run(["--target", "adaptor", "--libvirt-uri", args.libvirt_uri], Path(tmp) / "a")
            isolated = whole_run(["--target", "adaptor"], Path(tmp) / "isolated")
        both = sorted(set(lpar[1]) & set(adaptor[1]))
        lpar_sum = sum(lpar[1][k] for k in both)
        adaptor_sum = sum(adaptor[1][k] for k in both)
        print(f"\nwhole runs on {args.libvirt_uri} (and the adaptor target's own isolated LPAR)")
        print(f"  lpar target                  {lpar[0]:7.1f} s   {lpar[2]}")
        print(f"  adaptor target, same URI     {adaptor[0]:7.1f} s   {adaptor[2]}")
        print(f"  adaptor target, isolated     {isolated[0]:7.1f} s   {isolated[2]}")
        print(f"  the {len(both)} scenarios both judged: lpar {lpar_sum:.1f} s, adaptor {adaptor_sum:.1f} s")
        if lpar_sum:
            print(f"  ratio adaptor / lpar on them: {adaptor_sum / lpar_sum:.2f} (goal <= 1.5)")

    print(f"\npod VMs, submit to the guest's report (CreateVM + StartVM, the report), {args.pods} in a row")
    lpar_target = LparTarget(args.libvirt_uri)
    try:
        label = f"lpar target ({args.libvirt_uri}, in process)"
        print(f"  {label:<46}   {describe(pod_vm_times(lpar_target.open_environment, args.pods))}")
    finally:
        lpar_target.close()
    accelerator, why = x86_accelerator()
    for label, lpar_host in (
        ("reference adaptor, IBM Z host (s390x, TCG)", "ibmz"),
        ("reference adaptor, native host (x86_64, KVM)", "native"),
    ):
        if lpar_host == "native" and accelerator != "kvm":
            print(f"  {label:<46}   not measured: {why}")
            continue
        target = AdaptorTarget(None, binary=None, lpar_host=lpar_host)
        try:
            print(f"  {label:<46}   {describe(pod_vm_times(target.open_environment, args.pods))}")
        finally:
            target.close()
    if args.adaptor_binary is not None:
        target = AdaptorTarget(None, binary=args.adaptor_binary, lpar_host="ibmz")
        try:
            label = f"{args.adaptor_binary.name}, IBM Z host (s390x, TCG)"
            print(f"  {label:<46}   {describe(pod_vm_times(target.open_environment, args.pods))}")
        finally:
            target.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
