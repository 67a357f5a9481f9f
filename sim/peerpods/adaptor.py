"""The cloud-api-adaptor (CAA) of one worker node: node capacity and pod VM creation.

Two behaviours of the document live here. First, CAA reads ``peer-pods-cm`` when it
*starts* and patches the node's ``kata.peerpods.io/vm`` capacity to
``PEERPODS_LIMIT_PER_NODE`` (default 10; negative advertises nothing), so an edited limit
only takes effect when the adaptor restarts. Second, for each peer pod bound to its node it
creates the pod VM through the provider, sized from the webhook's annotations (else
``LIBVIRT_CPU``/``LIBVIRT_MEMORY``), with cloud-config user data carrying the selected
initdata.

The adaptor is asked for a pod VM by the node's Kata runtime (:mod:`sim.peerpods.kata`), which has
already decoded the pod's initdata annotation: what arrives is TOML text, and the adaptor
gzips and base64-encodes it again for the user data (CAA ``pkg/util/cloud.go``
``GetInitdataFromAnnotation``); a global ``INITDATA`` goes into the user data as configured.
The global value is parsed when the adaptor starts, and a broken one stops it
(:class:`AdaptorStartError`, "failed to parse global initdata"): its node advertises nothing.
A sizing annotation that is not an integer counts as 0, i.e. the configured default
(``GetPodvmResourcesFromAnnotation``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sim.bounds import excerpt
from sim.errors import ConformanceInputError
from sim.peerpods import cloudconfig, initdata
from sim.peerpods.providers import InstanceSpec, Provider
from sim.peerpods.webhook import ANN_MEMORY, ANN_VCPUS, EXTENDED_RESOURCE_DEFAULT

__all__ = [
    "ADVERTISED_RESOURCE",
    "CPU_KEY",
    "DEFAULT_LIMIT",
    "DEFAULT_MEMORY_MIB",
    "DEFAULT_VCPUS",
    "LIMIT_KEY",
    "MEMORY_KEY",
    "AdaptorConfig",
    "AdaptorConfigError",
    "AdaptorStartError",
    "CloudApiAdaptor",
    "NodeAdaptor",
    "PodVMError",
    "apf_json",
]

LIMIT_KEY = "PEERPODS_LIMIT_PER_NODE"
CPU_KEY = "LIBVIRT_CPU"
MEMORY_KEY = "LIBVIRT_MEMORY"
DEFAULT_LIMIT = 10
DEFAULT_VCPUS = 2
DEFAULT_MEMORY_MIB = 8192
#: The extended resource every adaptor advertises on its node: the webhook's *default* name,
#: fixed. Upstream's adaptor hard-codes ``kata.peerpods.io/vm`` (CAA
#: ``pkg/adaptor/k8sops/node.go``) and does not read the webhook's ``POD_VM_EXTENDED_RESOURCE``,
#: so a webhook that renames the resource leaves its peer pods Pending (NL-009). This is the one
#: place that says so; the reference keeps upstream's behaviour on purpose, not a bug to fix.
ADVERTISED_RESOURCE = EXTENDED_RESOURCE_DEFAULT


class AdaptorConfigError(ConformanceInputError):
    """peer-pods-cm holds a value the adaptor cannot start with; names the key."""


class AdaptorStartError(Exception):
    """The adaptor process exits at start-up (CAA ``cmd/cloud-api-adaptor/main.go``)."""


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


def _annotation_int(annotations: Mapping[str, str], key: str) -> int | None:
    """An integer sizing annotation, or None: absent, not an integer or not above 0 counts as unset."""
    raw = annotations.get(key)
    try:
        value = int(str(raw).strip(), 10) if raw is not None else 0
    except ValueError:
        value = 0  # upstream logs "Defaulting to 0" and uses the configured default
    return value if value > 0 else None


def user_data_initdata(annotations: Mapping[str, str], config: AdaptorConfig) -> str | None:
    """What goes to /run/peerpod/initdata: the annotation's TOML (as Kata decoded it)
    encoded again, else the global INITDATA as configured, else nothing."""
    from_pod = annotations.get(initdata.ANNOTATION) or ""
    if from_pod:
        return initdata.encode(from_pod.encode("utf-8"))
    return config.data.get(initdata.CM_KEY) or None


def apf_json(pod: Mapping[str, Any]) -> str:
    """The agent-protocol-forwarder's configuration, in upstream's shape (CAA ``cloud.go``
    ``CreateVM``, ``forwarder.Config``): the pod's name and Kubernetes namespace, and the pod
    network the tunnel rebuilds in the guest. The reference inspects no pod network namespace,
    so its ``pod-network`` names only the interface and the tunnel type."""
    meta = pod.get("metadata") or {}
    return json.dumps(
        {
            "pod-network": {"interface": "eth0", "tunnel-type": "vxlan"},
            "pod-namespace": meta.get("namespace", "default"),
            "pod-name": meta.get("name"),
        },
        indent=4,
    )


class NodeAdaptor(Protocol):
    """What a node needs of its adaptor: :class:`CloudApiAdaptor` in process, or a remote one the
    suite drives as the Kata shim does (the ``adaptor`` target)."""

    resource: str
    config: AdaptorConfig | None
    start_error: str | None

    def start(self, peer_pods_cm: Mapping[str, str] | None) -> int | None:
        """(Re)start with this environment; the capacity to advertise. Raises AdaptorStartError."""
        ...

    def create_pod_vm(self, pod: Mapping[str, Any]) -> str:
        """Create and start the pod VM of a sandbox (the pod as Kata sent it); its instance id."""
        ...

    def delete_pod_vm(self, instance_id: str) -> None:
        """Delete the pod VM."""
        ...


class CloudApiAdaptor:
    """One node's adaptor; :meth:`start` must run before it advertises or creates anything.

    It advertises :attr:`resource` (:data:`ADVERTISED_RESOURCE`), whatever the webhook's settings.
    """

    resource: str = ADVERTISED_RESOURCE

    def __init__(self, node: str, provider: Provider) -> None:
        self.node = node
        self.provider = provider
        self.config: AdaptorConfig | None = None
        self.start_error: str | None = None

    def start(self, peer_pods_cm: Mapping[str, str] | None) -> int | None:
        """Read the config map (as at process start); returns the capacity to advertise.

        A provider that cannot start with this environment (``check_start``: libvirt's pool
        missing) and a global INITDATA that does not decode and parse stop the adaptor: it raises
        :class:`AdaptorStartError` and is left not running (``config`` is None).
        """
        self.config = None
        self.start_error = None
        config = AdaptorConfig.from_configmap(peer_pods_cm)
        # the provider connects at start, and CAA's libvirt provider exits when its pool is
        # missing (src/cloud-providers/libvirt/libvirt.go NewLibvirtClient: "can't find storage pool")
        check = getattr(self.provider, "check_start", None)
        if callable(check):
            problem = check(config.data)
            if problem is not None:
                self.start_error = problem
                raise AdaptorStartError(problem)
        global_initdata = config.data.get(initdata.CM_KEY) or ""
        if global_initdata:
            try:
                initdata.parse(initdata.decode(global_initdata), source="INITDATA")
            except initdata.InitdataError as exc:
                self.start_error = f"failed to parse global initdata: {exc}"
                raise AdaptorStartError(self.start_error) from None
        self.config = config
        return self.config.advertised

    def instance_spec(self, pod: Mapping[str, Any], sandbox_id: str | None = None) -> InstanceSpec:
        """Size the pod VM and build its user data, as CAA does for a new sandbox (``sandbox_id``:
        the shim's; a fresh one when the pod comes from the in-process Kata runtime)."""
        config = self._config()
        meta = pod.get("metadata") or {}
        name, namespace = str(meta.get("name")), str(meta.get("namespace", "default"))
        annotations = meta.get("annotations") or {}
        user_data = cloudconfig.build_user_data(
            apf_json=apf_json(pod),
            initdata=user_data_initdata(annotations, config),
            auth_json=None,
        )
        return InstanceSpec(
            pod_name=name,
            pod_namespace=namespace,
            sandbox_id=sandbox_id or secrets.token_hex(32),
            vcpus=_annotation_int(annotations, ANN_VCPUS) or config.vcpus,
            memory_mib=_annotation_int(annotations, ANN_MEMORY) or config.memory_mib,
            user_data=user_data,
        )

    def create_pod_vm(self, pod: Mapping[str, Any], sandbox_id: str | None = None) -> str:
        """Create the pod VM; any provider failure becomes :class:`PodVMError` with the reason."""
        spec = self.instance_spec(pod, sandbox_id)
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
            why = f": {self.start_error}" if self.start_error else ""
            raise PodVMError(f"the cloud-api-adaptor on node {self.node} is not running{why}")
        return self.config
