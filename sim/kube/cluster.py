"""An in-process Kubernetes cluster, reduced to what peer pods exercise.

One object plays the API server's storage (namespaces, RuntimeClasses, ConfigMaps, Secrets,
pods) in front of three parts that do the work, each where Kubernetes does it:

* :class:`sim.kube.podpipeline.PodPipeline`: what becomes of a submitted pod, stage after
  stage in kube-apiserver's order (decode and defaults, the RuntimeClass plugin, the
  mutating webhooks, validation, the policy, storage), then the scheduling queue;
* :class:`sim.kube.schedulingqueue.SchedulingQueue`: pending pods, bound in creation order
  by kube-scheduler (:mod:`sim.kube.scheduler`), retried whenever resources are freed or added;
* :class:`sim.kube.nodepool.NodePool`: the nodes, each with its kubelet (which starts a bound
  pod's sandbox through the Kata runtime) and its cloud-api-adaptor (:mod:`sim.peerpods.adaptor`).

Refusals raise :class:`AdmissionDenied` whose text reads like kube-apiserver's; mistakes of
the caller (asking for a pod or node that does not exist) raise :class:`ClusterError`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sim.bounds import excerpt
from sim.errors import ConformanceInputError
from sim.kube.admission import MutatingWebhook, PeerPodNamespacePolicy, WebhookCaller
from sim.kube.nodepool import AdaptorFactory, NodePool
from sim.kube.podchecks import DNS_LABEL, AdmissionDenied
from sim.kube.podpipeline import ApiObjects, PodPipeline, is_peer_pod
from sim.kube.podstate import PodState
from sim.kube.scheduler import Scheduler, node_amounts
from sim.kube.schedulingqueue import SchedulingQueue
from sim.peerpods.adaptor import CloudApiAdaptor
from sim.peerpods.kata import UPSTREAM_CONFIG, KataConfig, KataRuntime
from sim.peerpods.podvm import GuestReport
from sim.peerpods.providers import Provider
from sim.peerpods.webhook import WebhookSettings

__all__ = [
    "NAMESPACE_NAME_LABEL",
    "OSC_NAMESPACE",
    "PEER_PODS_CM",
    "AdmissionDenied",
    "Cluster",
    "ClusterError",
    "PodState",
]

NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
PEER_PODS_CM = "peer-pods-cm"
PEER_PODS_SECRET = "peer-pods-secret"
OSC_NAMESPACE = "openshift-sandboxed-containers-operator"


class ClusterError(ConformanceInputError):
    """The caller asked for something the cluster does not have or cannot take."""


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _check_kind(obj: object, kind: str, api_versions: Sequence[str], what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ClusterError(f"{what}: not a Kubernetes object (got {type(obj).__name__})")
    if obj.get("kind") != kind or obj.get("apiVersion") not in api_versions:
        raise ClusterError(
            f"{what}: expected kind {kind} apiVersion {' or '.join(api_versions)}, "
            f"got {excerpt(obj.get('kind'))} {excerpt(obj.get('apiVersion'))}"
        )
    name = _meta(obj).get("name")
    if not isinstance(name, str) or not name:
        raise ClusterError(f"{what}: metadata.name is required")
    return obj


class Cluster:
    """API server, scheduler and one cloud-api-adaptor per node, in process.

    ``strict_runtime_classes``: kube-apiserver refuses a pod naming a RuntimeClass that does
    not exist; the suite's webhook scenarios use classes no cluster defines (``kata``,
    ``kata-remote-se``), so by default such a pod is admitted without overhead instead.
    ``default_requests_from_limits``: kube-apiserver defaults a missing request to the limit
    *before* the webhook sees the pod; off by default so the webhook sees what was written.
    """

    def __init__(
        self,
        webhooks: Sequence[MutatingWebhook] = (),
        caller: WebhookCaller | None = None,
        provider: Provider | None = None,
        *,
        caa_namespace: str = OSC_NAMESPACE,
        settings: WebhookSettings | None = None,
        strict_runtime_classes: bool = False,
        default_requests_from_limits: bool = False,
        user_info: Mapping[str, Any] | None = None,
        kata_config: KataConfig = UPSTREAM_CONFIG,
        adaptor_factory: AdaptorFactory | None = None,
    ) -> None:
        #: The webhook deployment's settings (its peer-pods RuntimeClass names the policy's).
        self.settings = settings if settings is not None else WebhookSettings()
        if caller is None:
            from sim.kube.admission import InProcessWebhookCaller

            caller = InProcessWebhookCaller(self.settings)
        if provider is None:
            from sim.peerpods.providers.memory import MemoryProvider

            provider = MemoryProvider()
        self.provider: Provider = provider
        self.caa_namespace = caa_namespace
        #: The nodes' Kata runtime (configuration-remote.toml): between scheduling and the adaptor.
        self.kata = KataRuntime(kata_config)
        self.scheduler = Scheduler()
        self.objects = ApiObjects()
        self._namespaces = self.objects.namespaces
        self._runtime_classes = self.objects.runtime_classes
        self._pods = self.objects.pods
        self._configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self._secrets: dict[tuple[str, str], dict[str, Any]] = {}
        #: The worker nodes, their kubelets and cloud-api-adaptors.
        self.nodepool = NodePool(provider, self.scheduler, ClusterError, adaptor_factory or CloudApiAdaptor)
        #: Pending pods, retried whenever nodes or resources change.
        runtime_classes = self.objects.runtime_classes
        self.queue = SchedulingQueue(
            self.scheduler,
            self.nodepool,
            self._pods,
            lambda: self.kata,
            lambda pod: is_peer_pod(pod, runtime_classes),
        )
        #: What becomes of a submitted pod (admission, checks, storage, scheduling).
        self.pipeline = PodPipeline(
            self.objects,
            self.queue,
            webhooks=webhooks,
            caller=caller,
            user_info=user_info,
            strict_runtime_classes=strict_runtime_classes,
            default_requests_from_limits=default_requests_from_limits,
        )

    @property
    def webhooks(self) -> list[MutatingWebhook]:
        """The registered mutating webhooks, in order."""
        return self.pipeline.webhooks

    @webhooks.setter
    def webhooks(self, webhooks: Sequence[MutatingWebhook]) -> None:
        self.pipeline.webhooks = list(webhooks)

    @property
    def caller(self) -> WebhookCaller:
        """How the API server calls the webhooks."""
        return self.pipeline.caller

    @caller.setter
    def caller(self, caller: WebhookCaller) -> None:
        self.pipeline.caller = caller

    @property
    def policy(self) -> PeerPodNamespacePolicy | None:
        """The validating policy, if installed (:meth:`apply_admission_policy`)."""
        return self.pipeline.policy

    # ------------------------------------------------------------------ namespaces
    def has_namespace(self, name: str) -> bool:
        return name in self._namespaces

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Create a namespace; it always carries ``kubernetes.io/metadata.name=<name>``."""
        if not isinstance(name, str) or len(name) > 63 or not DNS_LABEL.fullmatch(name):
            raise ClusterError(f"namespace name {excerpt(name)} is not a DNS label")
        if name in self._namespaces:
            raise ClusterError(f'namespaces "{name}" already exists')
        all_labels = {str(k): str(v) for k, v in (labels or {}).items()}
        all_labels[NAMESPACE_NAME_LABEL] = name  # set by the API server, whatever was asked
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": all_labels},
        }
        self._namespaces[name] = namespace
        return copy.deepcopy(namespace)

    def set_namespace_labels(self, name: str, labels: Mapping[str, str]) -> dict[str, Any]:
        """Replace a namespace's labels; the name label cannot be changed or removed."""
        namespace = self._namespace(name)
        wanted = {str(k): str(v) for k, v in labels.items()}
        if wanted.get(NAMESPACE_NAME_LABEL, name) != name:
            raise ClusterError(f"namespace {name}: label {NAMESPACE_NAME_LABEL} is immutable")
        wanted[NAMESPACE_NAME_LABEL] = name
        namespace["metadata"]["labels"] = wanted
        return copy.deepcopy(namespace)

    def namespace(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self._namespace(name))

    def _namespace(self, name: str) -> dict[str, Any]:
        try:
            return self._namespaces[name]
        except KeyError:
            raise ClusterError(f'namespaces "{name}" not found') from None

    # ------------------------------------------------------------------ cluster objects
    def apply_runtime_class(self, obj: Mapping[str, Any]) -> None:
        """Create or replace a RuntimeClass (node.k8s.io/v1); its overhead is validated."""
        _check_kind(obj, "RuntimeClass", ("node.k8s.io/v1",), "RuntimeClass")
        name = _meta(obj)["name"]
        if not isinstance(obj.get("handler"), str) or not obj["handler"]:
            raise ClusterError(f"RuntimeClass {name}: handler is required")
        pod_fixed = (obj.get("overhead") or {}).get("podFixed") or {}
        if not isinstance(pod_fixed, Mapping):
            raise ClusterError(f"RuntimeClass {name}: overhead.podFixed must be a mapping")
        node_amounts(pod_fixed, where=f"RuntimeClass {name}: overhead.podFixed")
        self._runtime_classes[name] = copy.deepcopy(dict(obj))

    def apply_configmap(self, obj: Mapping[str, Any]) -> None:
        """Create or replace a ConfigMap; without a namespace it goes to the adaptor's namespace.

        Adaptors do not see the change until they (re)start, exactly as CAA reads its
        environment from peer-pods-cm only at process start.
        """
        self._store(self._configmaps, obj, "ConfigMap", "data")

    def _store(
        self, table: dict[tuple[str, str], dict[str, Any]], obj: Mapping[str, Any], kind: str, field: str
    ) -> None:
        """Create or replace a ConfigMap or Secret whose ``field`` maps keys to strings; without
        a namespace it goes to the adaptor's namespace."""
        _check_kind(obj, kind, ("v1",), kind)
        name = _meta(obj)["name"]
        data = obj.get(field) or {}
        if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
            raise ClusterError(f"{kind} {name}: {field} must map keys to strings")
        stored = copy.deepcopy(dict(obj))
        namespace = _meta(obj).get("namespace") or self.caa_namespace
        stored["metadata"]["namespace"] = namespace
        table[(namespace, name)] = stored

    def configmap(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        found = self._configmaps.get((namespace or self.caa_namespace, name))
        return copy.deepcopy(found) if found else None

    def apply_admission_policy(
        self, allowed_namespaces: Sequence[str], *, runtime_class: str | None = None
    ) -> PeerPodNamespacePolicy:
        """Install the document's recommended policy (replaces an earlier one); it guards
        ``runtime_class``, by default the webhook's TARGET_RUNTIMECLASS."""
        guarded = runtime_class or self.settings.target_runtimeclass
        self.pipeline.policy = PeerPodNamespacePolicy(frozenset(allowed_namespaces), guarded)
        return self.pipeline.policy

    # ------------------------------------------------------------------ nodes and adaptors
    def apply_secret(self, obj: Mapping[str, Any]) -> None:
        """Create or replace a Secret (``stringData``) in the adaptor's namespace by default."""
        self._store(self._secrets, obj, "Secret", "stringData")

    def _peer_pods_data(self) -> dict[str, str]:
        """The adaptor's environment: peer-pods-secret, then peer-pods-cm (envFrom order)."""
        secret = self._secrets.get((self.caa_namespace, PEER_PODS_SECRET))
        found = self._configmaps.get((self.caa_namespace, PEER_PODS_CM))
        return {**dict((secret or {}).get("stringData") or {}), **dict((found or {}).get("data") or {})}

    def add_node(
        self,
        name: str,
        *,
        cpu: str = "8",
        memory: str = "32Gi",
        pods: int = 110,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Add a worker node; its adaptor starts at once with the current peer-pods-cm."""
        obj = self.nodepool.add(name, self._peer_pods_data(), cpu=cpu, memory=memory, pods=pods, extra=extra)
        self.queue.retry()
        return obj

    def start_adaptors(self) -> None:
        """Start every adaptor that has not started (nodes start theirs when added)."""
        self.nodepool.start_adaptors(self._peer_pods_data())
        self.queue.retry()

    def restart_adaptors(self) -> None:
        """Restart every adaptor: each re-reads peer-pods-cm and re-patches its node (a bad
        value is found before any adaptor restarts, leaving every node as it was)."""
        self.nodepool.restart_adaptors(self._peer_pods_data())
        self.queue.retry()

    def node(self, name: str) -> dict[str, Any]:
        return self.nodepool.node(name)

    def adaptor_error(self, name: str) -> str | None:
        """Why the node's cloud-api-adaptor is not running (its exit message), or None."""
        return self.nodepool.adaptor_error(name)

    def nodes(self) -> list[str]:
        return self.nodepool.names()

    def node_capacity(self, node: str) -> dict[str, str]:
        """The node's ``status.capacity`` as strings."""
        return self.nodepool.capacity(node)

    def node_allocatable(self, node: str) -> dict[str, str]:
        return self.nodepool.allocatable(node)

    def node_allocated(self, node: str) -> dict[str, str]:
        """What the pods bound to the node request, per resource, as quantity strings."""
        return self.nodepool.allocated(node)

    # ------------------------------------------------------------------ pods
    def create_pod(self, pod: Mapping[str, Any], *, operation: str = "CREATE") -> PodState:
        """Admit, store and schedule a pod (:class:`PodPipeline`); raises :class:`AdmissionDenied`
        if refused. ``operation="UPDATE"`` re-submits an existing pod (see :meth:`update_pod`)."""
        if operation == "UPDATE":
            return self.update_pod(pod)
        if operation != "CREATE":
            raise ClusterError(f"create_pod: operation must be CREATE or UPDATE, got {excerpt(operation)}")
        return self.pipeline.create(pod)

    def update_pod(self, pod: Mapping[str, Any]) -> PodState:
        """Re-submit an existing pod as an UPDATE through admission (OSC registers UPDATE)."""
        return self.pipeline.update(pod)

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod: its pod VM is deleted and its resources freed for waiting pods."""
        key = (namespace, name)
        state = self._pods.pop(key, None)
        if state is None:
            raise ClusterError(f'pods "{name}" not found in namespace {namespace}')
        self.queue.discard(key)
        if state.vm is not None and state.node is not None:
            self.nodepool.adaptor(state.node).delete_pod_vm(state.vm)
        if self.scheduler.release(key) is not None:
            self.queue.retry()

    def get_pod(self, namespace: str, name: str) -> PodState:
        """The pod's current state (a new PodState; the pod dict is the stored one)."""
        try:
            return replace(self._pods[(namespace, name)])
        except KeyError:
            raise ClusterError(f'pods "{name}" not found in namespace {namespace}') from None

    def pods(self) -> list[tuple[str, str]]:
        return list(self._pods)

    def pod_vms(self) -> list[str]:
        """Instance ids of the pod VMs of the pods that exist."""
        return sorted(state.vm for state in self._pods.values() if state.vm)

    def pod_vm(self, namespace: str, name: str) -> dict[str, Any]:
        return self.provider.describe(self._vm_of(namespace, name))

    def guest_report(self, namespace: str, name: str) -> GuestReport:
        return self.provider.guest_report(self._vm_of(namespace, name))

    def close(self) -> None:
        """Delete every pod (and pod VM), then close the provider if it can be closed."""
        self.queue.clear()  # nothing may start while everything is being torn down
        for namespace, name in list(self._pods):
            self.delete_pod(namespace, name)
        close = getattr(self.provider, "close", None)
        if callable(close):
            close()

    # ------------------------------------------------------------------ internals
    def _vm_of(self, namespace: str, name: str) -> str:
        state = self.get_pod(namespace, name)
        if state.vm is None:
            raise ClusterError(f"pod {namespace}/{name} has no pod VM ({state.phase}: {state.reason})")
        return state.vm
