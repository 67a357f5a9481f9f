"""Building pod manifests the way the features describe them, and reading them back.

Kept apart from the step definitions so the steps stay one line of intent each. The
helpers here deliberately use only the standard library and the Kubernetes client's
quantity parser: the suite's oracle must not share code with the reference
implementation it judges.
"""

from __future__ import annotations

import base64
import copy
import gzip
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from kubernetes.utils.quantity import parse_quantity

from sim.paths import FIXTURES_DIR

FIXTURES = FIXTURES_DIR
INITDATA_ANNOTATION = "io.katacontainers.config.hypervisor.cc_init_data"
SIZING_PREFIX = "io.katacontainers.config.hypervisor."
SIZING_ANNOTATIONS = tuple(
    SIZING_PREFIX + name for name in ("default_vcpus", "default_memory", "default_gpus")
)

Pod = dict[str, Any]


def resource_list(text: str) -> dict[str, str]:
    """``"cpu=2,memory=4Gi"`` -> ``{"cpu": "2", "memory": "4Gi"}``; empty text -> ``{}``."""
    result: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        result[name.strip()] = value.strip()
    return result


def resources(requests: str, limits: str) -> dict[str, dict[str, str]]:
    """A container's ``resources`` from the feature's compact notation."""
    block: dict[str, dict[str, str]] = {}
    if requests_map := resource_list(requests):
        block["requests"] = requests_map
    if limits_map := resource_list(limits):
        block["limits"] = limits_map
    return block


def new_pod(name: str, namespace: str, runtime_class: str | None) -> Pod:
    """A minimal pod with one container ``app``."""
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]}
    if runtime_class is not None:
        spec["runtimeClassName"] = runtime_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def peer_pod(name: str, namespace: str) -> Pod:
    """A peer pod as a user writes it: runtimeClassName kata-remote, nothing else special."""
    return new_pod(name, namespace, "kata-remote")


def containers(pod: Mapping[str, Any], kind: str = "containers") -> list[dict[str, Any]]:
    """The pod's containers (or ``initContainers``), never None."""
    return list((pod.get("spec") or {}).get(kind) or [])


def find_container(pod: Mapping[str, Any], name: str, kind: str = "containers") -> dict[str, Any]:
    """The named container; a clear assertion when the pod has none of that name."""
    for container in containers(pod, kind):
        if container.get("name") == name:
            return container
    raise AssertionError(
        f"pod has no {kind[:-1]} named {name!r}: {[c.get('name') for c in containers(pod, kind)]}"
    )


def pod_annotations(pod: Mapping[str, Any]) -> dict[str, str]:
    """The pod's annotations, never None."""
    return dict((pod.get("metadata") or {}).get("annotations") or {})


def annotate(pod: Pod, key: str, value: str) -> None:
    """Set one annotation on a drafted pod."""
    pod.setdefault("metadata", {}).setdefault("annotations", {})[key] = value


def requested(container: Mapping[str, Any], resource: str) -> tuple[str | None, str | None]:
    """The container's request and limit for one resource (None when absent)."""
    block = container.get("resources") or {}
    return (block.get("requests") or {}).get(resource), (block.get("limits") or {}).get(resource)


def quantity(value: str) -> Decimal:
    """A Kubernetes quantity, for comparisons that ignore notation (``0.25`` == ``250m``)."""
    return Decimal(parse_quantity(value))  # type: ignore[no-untyped-call]


def initdata_toml(file_name: str) -> bytes:
    """The bytes of an initdata fixture."""
    return (FIXTURES / "initdata" / file_name).read_bytes()


def encode_initdata(toml: bytes) -> str:
    """gzip then base64, as ``cat initdata.toml | gzip | base64 -w0`` does."""
    return base64.b64encode(gzip.compress(toml, mtime=0)).decode("ascii")


def snapshot(pod: Pod) -> Pod:
    """A deep copy, so what was submitted can be compared with what was admitted."""
    return copy.deepcopy(pod)
