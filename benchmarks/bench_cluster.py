"""The cluster target's speed, side by side in one run.

1. control plane ready: etcd + kube-apiserver + kube-scheduler started until each answers
   (goal: 10 s or less once built), best and worst of ``--starts`` starts;
2. 1,000 peer pods over 100 nodes (10 ``kata.peerpods.io/vm`` each), pods as stored after
   admission: through the real kube-scheduler (pods created through kube-apiserver by
   ``--clients`` threads; timed from the first create to the last binding) and through the
   reference scheduler (sim.kube.scheduler) -- pods/s of both and who is ahead;
3. with ``--features``: the whole feature run on ``--target cluster --cluster local``
   (goal: 60 s or less), timed as a user runs it.

    python benchmarks/bench_cluster.py [--pods 1000] [--nodes 100] [--starts 3] [--features]

kube-scheduler runs with its default client rate limit (50 requests/s, burst 100), as a
cluster installed with defaults does; each binding is one request.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import bench_scheduler  # noqa: E402  (beside this script)

from sim.harness.targets.cluster.build import find_binaries  # noqa: E402
from sim.harness.targets.cluster.controlplane import ControlPlane  # noqa: E402
from sim.kube.scheduler import Scheduler, effective_request, node_amounts  # noqa: E402

if TYPE_CHECKING:
    import urllib3
    from kubernetes.client import ApiClient

LIMIT = 10
NODE = {"cpu": "8", "memory": "32Gi", "pods": "110", "kata.peerpods.io/vm": str(LIMIT)}


def peer_pod(index: int) -> dict[str, Any]:
    """bench_scheduler.py's peer pod, without a RuntimeClass (this cluster defines none)."""
    return bench_scheduler.peer_pod(index, runtime_class=None)


def reference_rate(pods: int, nodes: int) -> tuple[float, int]:
    scheduler = Scheduler()
    allocatable = node_amounts(NODE, where="bench")
    for n in range(nodes):
        scheduler.add_node(f"worker-{n}", allocatable)
    bound = 0
    start = time.perf_counter()
    for index in range(pods):
        pod = peer_pod(index)
        if scheduler.schedule(pod["metadata"]["name"], effective_request(pod)).node is not None:
            bound += 1
    return pods / (time.perf_counter() - start), bound


def kube_rate(plane: ControlPlane, pods: int, nodes: int, clients: int) -> tuple[float, float, int]:
    """(pods/s scheduled, pods/s created, pods bound) through kube-apiserver and kube-scheduler."""
    from kubernetes import client, config

    # kubernetes.config.new_client_from_config has no annotations
    api: ApiClient = config.new_client_from_config(config_file=str(plane.kubeconfig))  # type: ignore[no-untyped-call]
    api.configuration.connection_pool_maxsize = clients
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="bench")))
    for n in range(nodes):
        name = f"worker-{n}"
        labels = {"kubernetes.io/hostname": name}
        core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name=name, labels=labels)))
        # TaintNodesByCondition taints a new node not-ready; the node lifecycle controller
        # (not run here) would lift it once the node is Ready
        core.patch_node(name, {"spec": {"taints": []}})
        core.patch_node_status(
            name,
            {
                "status": {
                    "capacity": NODE,
                    "allocatable": NODE,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                }
            },
        )
    # the RuntimeClass overhead is set by admission only with a RuntimeClass; without one the
    # bench pods carry it as stored pods do
    manifests = [peer_pod(i) for i in range(pods)]
    for manifest in manifests:
        del manifest["spec"]["overhead"]
        manifest["spec"]["containers"][0]["resources"]["requests"].update({"cpu": "250m", "memory": "120Mi"})
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda m: core.create_namespaced_pod("bench", m), manifests))
    created = time.perf_counter() - start
    bound = 0
    while time.perf_counter() - start < 300:
        # read raw, without building models: the client then returns the urllib3 response,
        # though its annotation always says V1PodList
        listed = cast(
            "urllib3.HTTPResponse",
            core.list_namespaced_pod("bench", field_selector="spec.nodeName!=", _preload_content=False),
        )
        import json

        bound = len(json.loads(listed.data)["items"])
        if bound >= pods:
            break
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    api.close()  # type: ignore[no-untyped-call]  # kubernetes' ApiClient.close has no annotations
    return bound / elapsed, pods / created, bound


def feature_run() -> tuple[float, int, str]:
    with tempfile.TemporaryDirectory() as reports:
        start = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", "sim", "run", "--target", "cluster", "--report-dir", reports, "-q"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
    last = (completed.stdout.strip().splitlines() or [""])[-1]
    return elapsed, completed.returncode, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--fast-qps", type=int, default=1000, help="kube-scheduler's raised client limit")
    parser.add_argument("--features", action="store_true", help="also time the whole feature run")
    args = parser.parse_args()
    binaries = find_binaries()
    if binaries is None:
        print("the control plane is not built: run `peerpods-conformance cluster prepare`")
        return 2
    ready = []
    for _ in range(args.starts):
        with ControlPlane(binaries) as plane:
            assert plane.ready_seconds is not None
            ready.append(plane.ready_seconds)
    print(
        f"control plane ready: best {min(ready):.1f} s, worst {max(ready):.1f} s over {len(ready)} starts "
        f"(goal <= 10 s): {'met' if max(ready) <= 10 else 'NOT met'}"
    )
    with ControlPlane(binaries) as plane:
        kube, created, bound = kube_rate(plane, args.pods, args.nodes, args.clients)
    with ControlPlane(binaries, scheduler_qps=args.fast_qps) as plane:
        fast, _, fast_bound = kube_rate(plane, args.pods, args.nodes, args.clients)
    reference, ref_bound = reference_rate(args.pods, args.nodes)
    print(f"{args.pods} peer pods over {args.nodes} nodes:")
    print(
        f"  kube-scheduler {binaries.kubernetes_version}, default client limit 50/s: {kube:8,.0f} pods/s "
        f"({bound} bound; kube-apiserver alone creates {created:,.0f} pods/s)"
    )
    print(
        f"  kube-scheduler {binaries.kubernetes_version}, client limit {args.fast_qps}/s: "
        f"{fast:8,.0f} pods/s "
        f"({fast_bound} bound; pods are created while it schedules, so creation bounds it too)"
    )
    print(
        f"  reference scheduler (sim.kube.scheduler):          {reference:8,.0f} pods/s ({ref_bound} bound)"
    )
    best = max(kube, fast)
    ahead = "reference" if reference > best else "kube-scheduler"
    print(f"  ahead: {ahead}, by {max(reference, best) / max(min(reference, best), 1e-9):,.0f}x")
    if args.features:
        elapsed, status, last = feature_run()
        print(
            f"feature run on --cluster local: {elapsed:.1f} s, exit {status} (goal <= 60 s: "
            f"{'met' if elapsed <= 60 else 'NOT met'}); {last}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
