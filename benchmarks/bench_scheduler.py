"""Scheduler throughput for peer pods: pods/s at two sizes, and how the per-pod cost grows.

Each size has N nodes advertising 10 ``kata.peerpods.io/vm`` and receives 10*N peer pods
(which fill every node) plus N more that must all stay Pending. The pods are what the API
server stores after admission (one ``kata.peerpods.io/vm`` on the first container and the
kata-remote RuntimeClass overhead), and the timed part is what the scheduler does per pod:
computing the effective request from the pod dict and placing it.

A per-pod cost ratio near 1 between the sizes shows the cost grows no worse than n log n
overall; the run fails (exit 1) below 50,000 pods/s at the larger size, or if any extra
pod was placed.

    python benchmarks/bench_scheduler.py [--small 100] [--large 1000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from sim.kube.scheduler import Scheduler, effective_request, node_amounts

ROOT = Path(__file__).resolve().parent.parent

LIMIT = 10
REQUIRED_RATE = 50_000


def peer_pod(index: int, runtime_class: str | None = "kata-remote") -> dict[str, Any]:
    """A mutated peer pod as stored by the API server (``runtime_class`` None: no class, its
    overhead already set, as bench_cluster.py submits it to a cluster without RuntimeClass)."""
    vm = {"kata.peerpods.io/vm": "1"}
    spec: dict[str, Any] = {
        "overhead": {"cpu": "250m", "memory": "120Mi"},
        "containers": [{"name": "app", "image": "app", "resources": {"requests": vm, "limits": vm}}],
    }
    if runtime_class is not None:
        spec = {"runtimeClassName": runtime_class, **spec}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"peer-{index}", "namespace": "bench"},
        "spec": spec,
    }


def run(nodes: int) -> tuple[float, int, str | None]:
    """Returns (pods/s, pods left Pending, one Pending reason)."""
    scheduler = Scheduler()
    allocatable = node_amounts(
        {"cpu": "8", "memory": "32Gi", "pods": "110", "kata.peerpods.io/vm": str(LIMIT)}, where="bench"
    )
    for n in range(nodes):
        scheduler.add_node(f"worker-{n}", allocatable)
    pods = [peer_pod(i) for i in range(nodes * LIMIT + nodes)]
    pending, reason = 0, None
    start = time.perf_counter()
    for pod in pods:
        placement = scheduler.schedule(pod["metadata"]["name"], effective_request(pod))
        if placement.node is None:
            pending += 1
            reason = placement.reason
    elapsed = time.perf_counter() - start
    return len(pods) / elapsed, pending, reason


def end_to_end(nodes: int) -> tuple[float, float]:
    """For information: pods/s through the whole Cluster (webhook, JSON patch, pod VM records),
    and milliseconds per delete while ``nodes`` pods wait (each delete retries them all)."""
    import yaml

    from sim.kube.admission import InProcessWebhookCaller, load_webhook_configuration
    from sim.kube.cluster import Cluster
    from sim.peerpods.providers.memory import MemoryProvider

    mwc = ROOT / "fixtures" / "admission" / "caa-chart-mwc.yaml"
    webhooks = load_webhook_configuration(mwc.read_text(), source=str(mwc))
    cluster = Cluster(webhooks, InProcessWebhookCaller(), MemoryProvider())
    cluster.apply_runtime_class(
        yaml.safe_load((ROOT / "fixtures/cluster/runtimeclass-kata-remote.yaml").read_text())
    )
    cluster.create_namespace("bench")
    for n in range(nodes):
        cluster.add_node(f"worker-{n}")
    pods = [peer_pod(i) for i in range(nodes * (LIMIT + 1))]
    for pod in pods:
        del pod["spec"]["overhead"]  # the RuntimeClass admission sets it
        pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}, "limits": {"cpu": "2"}}
    start = time.perf_counter()
    for pod in pods:
        cluster.create_pod(pod)
    rate = len(pods) / (time.perf_counter() - start)
    deletes = min(100, nodes)
    start = time.perf_counter()
    for index in range(deletes):
        cluster.delete_pod("bench", f"peer-{index}")
    per_delete = (time.perf_counter() - start) / deletes * 1000
    cluster.close()
    return rate, per_delete


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=1000)
    parser.add_argument(
        "--end-to-end", action="store_true", help="also time the whole Cluster (informational)"
    )
    args = parser.parse_args()
    run(args.small)  # warm up caches and the interpreter
    results = {}
    for size in (args.small, args.large):
        rate, pending, reason = min((run(size) for _ in range(3)), key=lambda r: -r[0])
        results[size] = rate
        pods = size * (LIMIT + 1)
        print(f"{size:>6} nodes, {pods:>7} pods: {rate:>10,.0f} pods/s; {pending} Pending: {reason}")
        if pending != size:
            print(f"FAIL: expected {size} pods to stay Pending, got {pending}")
            return 1
    ratio = results[args.small] / results[args.large]
    print(f"per-pod cost ratio large/small: {ratio:.2f} (size ratio {args.large / args.small:.0f})")
    if args.end_to_end:
        rate, per_delete = end_to_end(args.large)
        print(
            f"end to end (admission + scheduling + pod VM), {args.large} nodes: {rate:,.0f} pods/s; "
            f"{per_delete:.2f} ms per delete with {args.large} pods waiting"
        )
    if results[args.large] < REQUIRED_RATE:
        print(f"FAIL: below {REQUIRED_RATE:,} pods/s")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
