"""Throughput of the reference webhook: mutate_pod and review_response on a realistic pod.

The scheduler and admission benchmarks push every pod through the webhook, so its cost per
pod bounds them. The pod is about 3 KB of JSON: three containers and an init container with
env, ports, probes, volume mounts, requests and limits -- what a typical Deployment stamps out.

Run: python benchmarks/bench_mutate.py [--seconds N]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from sim.peerpods.webhook import mutate_pod, mutation_patch, review_response


def _container(name: str, cpu: tuple[str, str], memory: tuple[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "image": f"quay.io/example/{name}:1.4.2",
        "imagePullPolicy": "IfNotPresent",
        "args": ["--port=8080", f"--component={name}"],
        "env": [{"name": f"VAR_{index}", "value": f"value-{index}"} for index in range(2)],
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}, {"name": "data", "mountPath": "/data"}],
        "resources": {
            "requests": {"cpu": cpu[0], "memory": memory[0]},
            "limits": {"cpu": cpu[1], "memory": memory[1]},
        },
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }


def realistic_pod() -> dict[str, Any]:
    """A pod of roughly 3 KB, headed for kata-remote."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "shop-frontend-7d9f8c6b5-x2k4p",
            "namespace": "shop",
            "labels": {"app": "shop-frontend", "pod-template-hash": "7d9f8c6b5", "tier": "web"},
            "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "shop-frontend-7d9f8c6b5",
                    "uid": "6f1c2b7e-3d4a-4f5b-8c9d-0e1f2a3b4c5d",
                    "controller": True,
                }
            ],
        },
        "spec": {
            "runtimeClassName": "kata-remote",
            "serviceAccountName": "shop",
            "initContainers": [_container("migrate", ("500m", "1"), ("256Mi", "512Mi"))],
            "containers": [
                _container("frontend", ("1", "2"), ("1Gi", "2Gi")),
                _container("sidecar-proxy", ("100m", "200m"), ("128Mi", "256Mi")),
                _container("metrics", ("50m", "100m"), ("64Mi", "128Mi")),
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "shop-config"}},
                {"name": "data", "emptyDir": {}},
            ],
        },
    }


def _rate(label: str, action: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``action`` over about ``seconds``, after a short warm-up."""
    for _ in range(200):
        action()
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            action()
        count += 100
    rate = count / (time.perf_counter() - started)
    print(f"{label:<40} {rate:>12,.0f} pods/s   {1e6 / rate:8.1f} us/pod")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure")
    args = parser.parse_args()
    pod = realistic_pod()
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {"uid": "0b5e6e0e-1c2d-4e3f-9a8b-7c6d5e4f3a2b", "operation": "CREATE", "object": pod},
    }
    containers = len(pod["spec"]["containers"])
    print(f"pod size: {len(json.dumps(pod))} bytes of JSON, {containers} containers + 1 init container")
    _rate("mutate_pod", lambda: mutate_pod(pod), args.seconds)
    _rate("mutation_patch", lambda: mutation_patch(pod), args.seconds)
    _rate("review_response", lambda: review_response(review), args.seconds)


if __name__ == "__main__":
    main()
