"""An in-process Kubernetes cluster, reduced to what peer pods exercise.

One object plays the API server (namespaces, RuntimeClasses, ConfigMaps, pods, the
admission chain), kube-scheduler (:mod:`sim.kube.scheduler`) and, on each node, the kubelet's
part plus one cloud-api-adaptor (:mod:`sim.peerpods.adaptor`). Pods go through the same stages, in
the same order, as on a real cluster, because the document's behaviours arise from their
interplay (an excluded namespace escapes the webhook, hence the extended-resource limit):

1. decode and defaults: the object must be a Pod whose quantities parse (400 otherwise);
2. the RuntimeClass admission plugin sets ``spec.overhead`` from the class's ``podFixed``
   (it runs before the webhooks in kube-apiserver's plugin order);
3. the mutating webhooks (:func:`sim.kube.admission.admit`, failurePolicy included);
4. validation: RuntimeClass overhead unchanged, containers and resources valid (422);
5. the validating policy, if installed (the document's best practice: peer pods only in
   chosen namespaces);
6. storage (409 on a duplicate name), scheduling, and for a bound peer pod the node's
   adaptor creates the pod VM.

Refusals raise :class:`AdmissionDenied` whose text reads like kube-apiserver's; mistakes of
the caller (asking for a pod or node that does not exist) raise :class:`ClusterError`.
Pending pods are retried, in creation order, whenever resources are freed or added.

The nodes, their kubelets and adaptors are a :class:`sim.kube.nodepool.NodePool` (a bound
pod's sandbox starts there); the pending pods and how a pod is bound are a
:class:`sim.kube.schedulingqueue.SchedulingQueue`; this class is the API server in front of both.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sim.bounds import excerpt
from sim.errors import ConformanceInputError
from sim.kube.admission import (
    DEFAULT_USER_INFO,
    MutatingWebhook,
    PeerPodNamespacePolicy,
    WebhookCaller,
    admit,
)
from sim.kube.nodepool import NodePool
from sim.kube.podchecks import (
    DNS_LABEL,
    DNS_SUBDOMAIN,
    AdmissionDenied,
    check_quantities,
    default_requests,
    immutable_spec,
    invalid,
    overhead_mismatch,
    validate_pod,
)
from sim.kube.podstate import PodState
from sim.kube.scheduler import Scheduler, effective_request, node_amounts
from sim.kube.schedulingqueue import SchedulingQueue
from sim.peerpods.kata import PEER_POD_HANDLER, UPSTREAM_CONFIG, KataConfig, KataRuntime
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
    ) -> None:
        #: The webhook deployment's settings (its peer-pods RuntimeClass names the policy's).
        self.settings = settings if settings is not None else WebhookSettings()
        if caller is None:
            from sim.kube.admission import InProcessWebhookCaller

            caller = InProcessWebhookCaller(self.settings)
        if provider is None:
            from sim.peerpods.providers.memory import MemoryProvider

            provider = MemoryProvider()
        self.webhooks: list[MutatingWebhook] = list(webhooks)
        self.caller: WebhookCaller = caller
        self.provider: Provider = provider
        self.caa_namespace = caa_namespace
        self.strict_runtime_classes = strict_runtime_classes
        self.default_requests_from_limits = default_requests_from_limits
        self.user_info = dict(user_info if user_info is not None else DEFAULT_USER_INFO)
        self.policy: PeerPodNamespacePolicy | None = None
        #: The nodes' Kata runtime (configuration-remote.toml): between scheduling and the adaptor.
        self.kata = KataRuntime(kata_config)
        self.scheduler = Scheduler()
        self._namespaces: dict[str, dict[str, Any]] = {}
        self._runtime_classes: dict[str, dict[str, Any]] = {}
        self._configmaps: dict[tuple[str, str], dict[str, Any]] = {}
        self._secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self._pods: dict[tuple[str, str], PodState] = {}
        #: The worker nodes and their cloud-api-adaptors.
        self.nodepool = NodePool(provider, self.scheduler, ClusterError)
        #: Pending pods, retried whenever nodes or resources change.
        self.queue = SchedulingQueue(
            self.scheduler, self.nodepool, self._pods, lambda: self.kata, self._is_peer_pod
        )

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
        self.policy = PeerPodNamespacePolicy(frozenset(allowed_namespaces), guarded)
        return self.policy

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
        """Admit, store and schedule a pod; raises :class:`AdmissionDenied` if refused.

        ``operation="UPDATE"`` re-submits an existing pod (see :meth:`update_pod`).
        """
        if operation == "UPDATE":
            return self.update_pod(pod)
        if operation != "CREATE":
            raise ClusterError(f"create_pod: operation must be CREATE or UPDATE, got {excerpt(operation)}")
        candidate, namespace, name = self._decode(pod)
        self._runtime_class_admit(candidate, name)
        namespace_obj = self._namespace(namespace)
        outcome = admit(
            candidate,
            operation="CREATE",
            namespace_obj=namespace_obj,
            webhooks=self.webhooks,
            caller=self.caller,
            user_info=self.user_info,
        )
        if not outcome.allowed:
            raise AdmissionDenied(
                outcome.reason or "denied", code=500 if "Internal error" in (outcome.reason or "") else 403
            )
        stored = outcome.pod
        if self.default_requests_from_limits and outcome.patched:
            default_requests(stored)  # kube-apiserver defaults a webhook's patched object again
        self._validate_admitted(stored, namespace, name)
        if not name:
            name = f"{_meta(stored)['generateName']}{secrets.token_hex(3)[:5]}"
            _meta(stored)["name"] = name
        key = (namespace, name)
        if key in self._pods:
            raise AdmissionDenied(f'pods "{name}" already exists', code=409)
        request = effective_request(stored)
        state = PodState(pod=stored, phase="Pending")
        stored.setdefault("status", {})["phase"] = "Pending"
        self._pods[key] = state
        self.queue.schedule(key, state, request)
        return replace(state)

    def update_pod(self, pod: Mapping[str, Any]) -> PodState:
        """Re-submit an existing pod as an UPDATE through admission (OSC registers UPDATE).

        A pod's spec is immutable apart from images, so a webhook that changes anything
        else on UPDATE gets the update refused, as kube-apiserver refuses it.
        """
        candidate, namespace, name = self._decode(pod)
        key = (namespace, name)
        if key not in self._pods:
            raise AdmissionDenied(f'pods "{name}" not found', code=404)
        state = self._pods[key]
        old = state.pod
        outcome = admit(
            candidate,
            operation="UPDATE",
            namespace_obj=self._namespace(namespace),
            webhooks=self.webhooks,
            caller=self.caller,
            user_info=self.user_info,
            old_pod=old,
        )
        if not outcome.allowed:
            raise AdmissionDenied(outcome.reason or "denied")
        updated = outcome.pod
        if immutable_spec(updated) != immutable_spec(old):
            raise invalid(
                name, "spec: Forbidden: pod updates may not change fields other than container images"
            )
        updated.setdefault("spec", {})["nodeName"] = (old.get("spec") or {}).get("nodeName")
        if updated["spec"]["nodeName"] is None:
            del updated["spec"]["nodeName"]
        updated["status"] = copy.deepcopy(old.get("status") or {})
        state.pod = updated
        return replace(state)

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

    def _decode(self, pod: Mapping[str, Any]) -> tuple[dict[str, Any], str, str]:
        """Stage 1: a Pod object, its namespace filled in, quantities parseable."""
        if not isinstance(pod, Mapping):
            raise AdmissionDenied(f"the object is a {type(pod).__name__}, not a Pod", code=400)
        if pod.get("kind", "Pod") != "Pod" or pod.get("apiVersion", "v1") != "v1":
            raise AdmissionDenied(
                f"expected kind Pod apiVersion v1, got {excerpt(pod.get('kind'))} "
                f"{excerpt(pod.get('apiVersion'))}",
                code=400,
            )
        candidate = copy.deepcopy(dict(pod))
        candidate.setdefault("apiVersion", "v1")
        candidate.setdefault("kind", "Pod")
        meta = candidate.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise AdmissionDenied("metadata: must be a mapping", code=400)
        name = meta.get("name") or ""
        if not name and not meta.get("generateName"):
            raise invalid("", "metadata.name: Required value: name or generateName is required")
        if name and (not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.fullmatch(name)):
            raise invalid(
                str(name), f"metadata.name: Invalid value: {excerpt(name)}: must be a DNS subdomain"
            )
        namespace = meta.get("namespace") or "default"
        meta["namespace"] = namespace
        self._namespace_or_denied(namespace)
        check_quantities(candidate, name)
        if self.default_requests_from_limits:
            default_requests(candidate)
        return candidate, namespace, name

    def _namespace_or_denied(self, namespace: str) -> None:
        if namespace not in self._namespaces:
            raise AdmissionDenied(f'namespaces "{namespace}" not found', code=404)

    def _runtime_class_admit(self, pod: dict[str, Any], name: str) -> None:
        """Stage 2: the RuntimeClass plugin sets ``spec.overhead`` from ``podFixed``."""
        class_name = pod["spec"].get("runtimeClassName")
        if not class_name:
            return
        runtime_class = self._runtime_classes.get(class_name)
        if runtime_class is None:
            if self.strict_runtime_classes:
                raise AdmissionDenied(
                    f'pods "{name}" is forbidden: pod rejected: RuntimeClass "{class_name}" not found'
                )
            return
        pod_fixed = (runtime_class.get("overhead") or {}).get("podFixed")
        if not pod_fixed:
            return
        if pod["spec"].get("overhead") and not self._same_overhead(pod["spec"]["overhead"], pod_fixed):
            raise overhead_mismatch(name)
        pod["spec"]["overhead"] = copy.deepcopy(pod_fixed)

    @staticmethod
    def _same_overhead(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
        return node_amounts(a, where="spec.overhead") == node_amounts(b, where="overhead.podFixed")

    def _validate_admitted(self, pod: dict[str, Any], namespace: str, name: str) -> None:
        """Stages 4 and 5: the final object must be valid and the policy must allow it."""
        if _meta(pod).get("namespace", namespace) != namespace:
            raise invalid(name, "metadata.namespace: a webhook may not change the namespace")
        validate_pod(pod, name)
        class_name = (pod.get("spec") or {}).get("runtimeClassName")
        runtime_class = self._runtime_classes.get(class_name or "")
        pod_fixed = ((runtime_class or {}).get("overhead") or {}).get("podFixed")
        if pod_fixed and not self._same_overhead(pod["spec"].get("overhead") or {}, pod_fixed):
            raise overhead_mismatch(name)
        if self.policy is not None:
            denial = self.policy.denial(pod, namespace)
            if denial:
                raise AdmissionDenied(f'pods "{name or "<generated>"}" is forbidden: {denial}')

    def _is_peer_pod(self, pod: Mapping[str, Any]) -> bool:
        """A peer pod runs under a RuntimeClass whose handler is kata-remote."""
        class_name = (pod.get("spec") or {}).get("runtimeClassName")
        if not class_name:
            return False
        runtime_class = self._runtime_classes.get(class_name)
        handler = runtime_class.get("handler") if runtime_class else class_name
        return handler == PEER_POD_HANDLER
