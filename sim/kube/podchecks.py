"""What kube-apiserver checks on a pod, outside admission plugins: decoding, defaults, validation.

Kept apart from :mod:`sim.kube.cluster` because the *order* matters to the behaviour under test
and is easy to get wrong: quantities must parse before the webhooks see the pod (400), but
the rules relating requests and limits are checked only on the object the webhooks return
(422). That is why a peer pod asking for more CPU than its limit is admitted - the webhook
clears its resources - while the same pod without the peer-pods class is refused.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from sim.bounds import excerpt
from sim.quantities import QuantityError, to_amount

__all__ = [
    "AdmissionDenied",
    "check_quantities",
    "default_requests",
    "immutable_spec",
    "invalid",
    "overhead_mismatch",
    "validate_pod",
]

DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_NATIVE_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})


class AdmissionDenied(Exception):
    """The API server refused the request; ``str()`` is its message, ``code`` its HTTP status."""

    def __init__(self, message: str, *, code: int = 403) -> None:
        super().__init__(message)
        self.code = code


def invalid(name: str, problem: str) -> AdmissionDenied:
    """A 422 refusal worded as kube-apiserver's field validation errors."""
    return AdmissionDenied(f'Pod "{name}" is invalid: {problem}', code=422)


def overhead_mismatch(name: str) -> AdmissionDenied:
    """The RuntimeClass plugin's refusal of an overhead that differs from ``podFixed``."""
    return AdmissionDenied(
        f'pods "{name}" is forbidden: pod rejected: '
        "Pod's Overhead doesn't match RuntimeClass's defined Overhead"
    )


def _containers(spec: Mapping[str, Any], kind: str, name: str) -> list[dict[str, Any]]:
    entries = spec.get(kind) or []
    if not isinstance(entries, list) or not all(isinstance(c, dict) for c in entries):
        raise invalid(name, f"spec.{kind}: must be a list of containers")
    return entries


def _amounts(block: object, part: str, where: str, name: str) -> dict[str, int]:
    """Decode one requests/limits map; an unparsable quantity is a 400, as in decoding."""
    values = (block.get(part) if isinstance(block, Mapping) else None) or {}
    if not isinstance(values, Mapping):
        raise AdmissionDenied(f'Pod "{name}": {where}.resources.{part}: must be a mapping', code=400)
    try:
        return {
            str(r): to_amount(str(r), v, where=f"{where}.resources.{part}.{r}") for r, v in values.items()
        }
    except QuantityError as exc:
        raise AdmissionDenied(f'Pod "{name}": {exc}', code=400) from None


def check_quantities(pod: Mapping[str, Any], name: str) -> None:
    """Decoding: every quantity must parse before admission even starts (else 400)."""
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        raise invalid(name, "spec: Required value")
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(_containers(spec, kind, name)):
            where = f"spec.{kind}[{index}] ({container.get('name')})"
            block = container.get("resources") or {}
            if not isinstance(block, Mapping):
                raise AdmissionDenied(f'Pod "{name}": {where}.resources: must be a mapping', code=400)
            for part in ("requests", "limits"):
                _amounts(block, part, where, name)
    overhead = spec.get("overhead") or {}
    try:
        for resource, value in overhead.items():
            to_amount(str(resource), value, where=f"spec.overhead.{resource}")
    except QuantityError as exc:
        raise AdmissionDenied(f'Pod "{name}": {exc}', code=400) from None


def _validate_resources(container: Mapping[str, Any], where: str, name: str) -> None:
    """The API server's resource rules: requests <= limits, extended ones equal to their limit."""
    block = container.get("resources") or {}
    requests, limits = _amounts(block, "requests", where, name), _amounts(block, "limits", where, name)
    for resource, amount in requests.items():
        if resource in limits and amount > limits[resource]:
            raise invalid(
                name, f"{where}.resources.requests.{resource}: must be less than or equal to {resource} limit"
            )
        extended = resource not in _NATIVE_RESOURCES and not resource.startswith("hugepages-")
        if extended and (resource not in limits or limits[resource] != amount):
            raise invalid(name, f"{where}.resources.requests.{resource}: must be equal to {resource} limit")


def validate_pod(pod: Mapping[str, Any], name: str) -> None:
    """What kube-apiserver checks on the final object, reduced to what the suite relies on."""
    spec = pod.get("spec")
    if not isinstance(spec, Mapping):
        raise invalid(name, "spec: Required value")
    containers = _containers(spec, "containers", name)
    if not containers:
        raise invalid(name, "spec.containers: Required value")
    seen: set[str] = set()
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(_containers(spec, kind, name)):
            where = f"spec.{kind}[{index}]"
            cname = container.get("name")
            if not isinstance(cname, str) or not DNS_LABEL.fullmatch(cname):
                raise invalid(name, f"{where}.name: Invalid value: {excerpt(cname)}: must be a DNS label")
            if cname in seen:
                raise invalid(name, f"{where}.name: Duplicate value: {excerpt(cname)}")
            seen.add(cname)
            if not container.get("image"):
                raise invalid(name, f"{where}.image: Required value")
            _validate_resources(container, f"{where} ({cname})", name)
    try:
        for resource, value in (spec.get("overhead") or {}).items():
            to_amount(str(resource), value, where=f"spec.overhead.{resource}")
    except QuantityError as exc:
        raise AdmissionDenied(f'Pod "{name}": {exc}', code=400) from None


def default_requests(pod: dict[str, Any]) -> None:
    """kube-apiserver's SetDefaults_Pod: a limit without a request becomes the request."""
    spec = pod.get("spec") or {}
    for kind in ("containers", "initContainers"):
        for container in spec.get(kind) or []:
            block = container.get("resources")
            if isinstance(block, dict) and isinstance(block.get("limits"), dict):
                requests = block.setdefault("requests", {})
                if isinstance(requests, dict):
                    for resource, value in block["limits"].items():
                        requests.setdefault(resource, value)


def immutable_spec(pod: Mapping[str, Any]) -> Any:
    """The parts of a pod spec an UPDATE may not change (images and binding excluded)."""
    spec = copy.deepcopy(dict(pod.get("spec") or {}))
    spec.pop("nodeName", None)
    for kind in ("containers", "initContainers"):
        for container in spec.get(kind) or []:
            if isinstance(container, dict):
                container.pop("image", None)
    return spec
