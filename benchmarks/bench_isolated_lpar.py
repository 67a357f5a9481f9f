"""The isolated LPAR host: how long it takes to start and to tear down, and its parts.

Prints, from one run on this machine (as root):

* cold start: the first start with an empty QEMU capabilities cache (libvirtd probes every
  qemu-system-* binary), then its teardown;
* warm start and teardown, ``--repeat`` times: median, min and max, and the median of each
  phase (stale runs, directories, namespace, daemons, network, pool; libvirt objects,
  processes, namespace, directories);
* a pod sandbox's namespace: made and removed;
* the IBM Z KVM host layer: compiled from its source (cold cache), and CAA's s390x domain
  defined and started through it (define to running, QEMU's TCG), with an empty disk.

Usage: sudo python benchmarks/bench_isolated_lpar.py [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sim.lpar.ibmz_host import ibmz_host_library, preload_environment
from sim.lpar.isolated import IsolatedLpar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# CAA's s390x domain from the layer's tests (Go's XML, type kvm, host-model CPU)
from tests.integration.test_ibmz_host_layer import PROBE, _volumes, caa_s390x  # noqa: E402


def figures(values: list[float]) -> str:
    return (
        f"median {statistics.median(values):.2f} s  min {min(values):.2f}  max {max(values):.2f}  "
        f"(n={len(values)})"
    )


def once(capabilities: Path | None = None) -> tuple[float, float, dict[str, float]]:
    host = IsolatedLpar(capabilities_cache=capabilities)
    started = time.monotonic()
    host.start()
    up = time.monotonic() - started
    started = time.monotonic()
    host.stop()
    return up, time.monotonic() - started, dict(host.timings)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces, a private libvirtd)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as empty:
        up, down, phases = once(Path(empty) / "capabilities")
    print(f"cold start (empty capabilities cache): {up:.2f} s (daemons {phases['start: daemons']:.2f} s)")
    print(f"its teardown: {down:.2f} s")

    once()  # fills the suite's capabilities cache if the cold run's was not it
    ups, downs, runs = [], [], []
    for _ in range(args.repeat):
        up, down, phases = once()
        ups.append(up)
        downs.append(down)
        runs.append(phases)
    print(f"warm start: {figures(ups)}")
    print(f"teardown:   {figures(downs)}")
    for phase in runs[0]:
        print(f"  {phase:<24} median {statistics.median(r[phase] for r in runs):.3f} s")

    with IsolatedLpar() as host:
        made, removed = [], []
        for _ in range(args.repeat):
            started = time.monotonic()
            pod = host.pod_netns()
            made.append(time.monotonic() - started)
            started = time.monotonic()
            host.remove_pod_netns(pod)
            removed.append(time.monotonic() - started)
        print(f"pod namespace made:    {figures(made)}")
        print(f"pod namespace removed: {figures(removed)}")

        with tempfile.TemporaryDirectory() as cache:
            started = time.monotonic()
            layer = ibmz_host_library(Path(cache))
            print(f"IBM Z host layer compiled: {time.monotonic() - started:.2f} s")
            runs_s390x = []
            for index in range(args.repeat):
                name = f"bench-{index}"
                _volumes(host, name)
                started = time.monotonic()
                done = subprocess.run(
                    [sys.executable, "-c", PROBE, host.uri, "define", "start"],
                    input=caa_s390x(name, host.pool_dir),
                    env=preload_environment(layer, os.environ),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs_s390x.append(time.monotonic() - started)
                if '"started": true' not in done.stdout:
                    print(f"CAA's s390x domain did not start: {done.stdout}", file=sys.stderr)
                    return 1
            print(f"CAA's s390x domain, process start to running under TCG: {figures(runs_s390x)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
