"""The cloud-api-adaptor (CAA) of one worker node: node capacity and pod VM creation.

Two behaviours of the document live here. First, CAA reads ``peer-pods-cm`` when it
*starts* and patches the node's ``kata.peerpods.io/vm`` capacity to
``PEERPODS_LIMIT_PER_NODE`` (default 10; negative advertises nothing), so an edited limit
only takes effect when the adaptor restarts. Second, for each peer pod bound to its node it
creates the pod VM through the provider, sized from the webhook's annotations (else
``LIBVIRT_CPU``/``LIBVIRT_MEMORY``), with cloud-config user data carrying the selected
initdata.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sim import cloudconfig, initdata
from sim.bounds import excerpt
from sim.errors import ConformanceInputError
from sim.providers import InstanceSpec, Provider
from sim.webhook import ANN_MEMORY, ANN_VCPUS, EXTENDED_RESOURCE_DEFAULT

__all__ = [
    "CPU_KEY",
    "DEFAULT_LIMIT",
    "DEFAULT_MEMORY_MIB",
    "DEFAULT_VCPUS",
    "LIMIT_KEY",
    "MEMORY_KEY",
    "AdaptorConfig",
    "AdaptorConfigError",
    "CloudApiAdaptor",
    "PodVMError",
]

LIMIT_KEY = "PEERPODS_LIMIT_PER_NODE"
CPU_KEY = "LIBVIRT_CPU"
MEMORY_KEY = "LIBVIRT_MEMORY"
DEFAULT_LIMIT = 10
DEFAULT_VCPUS = 2
DEFAULT_MEMORY_MIB = 8192


class AdaptorConfigError(ConformanceInputError):
    """peer-pods-cm holds a value the adaptor cannot start with; names the key."""


class PodVMError(Exception):
    """Creating a pod VM failed; the message is the pod's failure reason."""


def _integer(data: Mapping[str, str], key: str, default: int, source: str, *, positive: bool) -> int:
    raw = data.get(key)
    if raw is None or str(raw).strip() == "":
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise AdaptorConfigError(f"{source}: {key}: {excerpt(raw)} is not an integer") from None
    if positive and value <= 0:
        raise AdaptorConfigError(f"{source}: {key}: {excerpt(raw)} must be a positive integer")
    return value


@dataclass(frozen=True)
class AdaptorConfig:
    """What an adaptor read from peer-pods-cm at start; fixed until it restarts."""

    limit: int = DEFAULT_LIMIT
    vcpus: int = DEFAULT_VCPUS
    memory_mib: int = DEFAULT_MEMORY_MIB
    data: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_configmap(cls, data: Mapping[str, str] | None, *, source: str = "peer-pods-cm") -> AdaptorConfig:
        """Read the keys CAA reads; a malformed number is an error naming the key."""
        values = {str(k): str(v) for k, v in (data or {}).items()}
        return cls(
            limit=_integer(values, LIMIT_KEY, DEFAULT_LIMIT, source, positive=False),
            vcpus=_integer(values, CPU_KEY, DEFAULT_VCPUS, source, positive=True),
            memory_mib=_integer(values, MEMORY_KEY, DEFAULT_MEMORY_MIB, source, positive=True),
            data=values,
        )

    @property
    def advertised(self) -> int | None:
        """The capacity to patch, or None: a negative limit advertises nothing."""
        return None if self.limit < 0 else self.limit


def _annotation_int(annotations: Mapping[str, str], key: str, label: str) -> int | None:
    raw = annotations.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise PodVMError(f"{label}: annotation {key}: {excerpt(raw)} is not an integer") from None
    if value <= 0:
        raise PodVMError(f"{label}: annotation {key}: {excerpt(raw)} must be positive")
    return value


def _apf_json(pod: Mapping[str, Any]) -> str:
    """The agent-protocol-forwarder configuration the tunnel needs (kept minimal)."""
    meta = pod.get("metadata") or {}
    return json.dumps(
        {
            "pod-namespace": "/run/netns/podns",
            "pod-name": meta.get("name"),
            "pod-network": {"interface": "eth0", "pod-namespace": meta.get("namespace")},
        },
        sort_keys=True,
    )


class CloudApiAdaptor:
    """One node's adaptor; :meth:`start` must run before it advertises or creates anything."""

    def __init__(
        self, node: str, provider: Provider, extended_resource: str = EXTENDED_RESOURCE_DEFAULT
    ) -> None:
        self.node = node
        self.provider = provider
        self.extended_resource = extended_resource
        self.config: AdaptorConfig | None = None

    def start(self, peer_pods_cm: Mapping[str, str] | None) -> int | None:
        """Read the config map (as at process start); returns the capacity to advertise."""
        self.config = AdaptorConfig.from_configmap(peer_pods_cm)
        return self.config.advertised

    def instance_spec(self, pod: Mapping[str, Any]) -> InstanceSpec:
        """Size the pod VM and build its user data, as CAA does for a new sandbox."""
        config = self._config()
        meta = pod.get("metadata") or {}
        name, namespace = str(meta.get("name")), str(meta.get("namespace", "default"))
        annotations = meta.get("annotations") or {}
        label = f"pod {namespace}/{name}"
        user_data = cloudconfig.build_user_data(
            apf_json=_apf_json(pod),
            initdata=initdata.select(annotations, config.data),
            auth_json=None,
        )
        return InstanceSpec(
            pod_name=name,
            pod_namespace=namespace,
            sandbox_id=secrets.token_hex(32),
            vcpus=_annotation_int(annotations, ANN_VCPUS, label) or config.vcpus,
            memory_mib=_annotation_int(annotations, ANN_MEMORY, label) or config.memory_mib,
            user_data=user_data,
        )

    def create_pod_vm(self, pod: Mapping[str, Any]) -> str:
        """Create the pod VM; any provider failure becomes :class:`PodVMError` with the reason."""
        spec = self.instance_spec(pod)
        try:
            return self.provider.create_instance(spec)
        except Exception as exc:  # a provider may fail in any way; the pod must say why
            raise PodVMError(
                f"creating pod VM for pod {spec.pod_namespace}/{spec.pod_name} failed: {exc}"
            ) from exc

    def delete_pod_vm(self, instance_id: str) -> None:
        self.provider.delete_instance(instance_id)

    def _config(self) -> AdaptorConfig:
        if self.config is None:
            raise PodVMError(f"the cloud-api-adaptor on node {self.node} has not started")
        return self.config
