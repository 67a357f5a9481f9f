"""What becomes of a pod submitted to the in-process API server: one pipeline, stage after stage.

Pods go through the same stages, in the same order, as on a real cluster, because the
document's behaviours arise from their interplay (an excluded namespace escapes the webhook,
hence the extended-resource limit):

1. decode and defaults: the object must be a Pod whose quantities parse (400 otherwise);
2. the RuntimeClass admission plugin sets ``spec.overhead`` from the class's ``podFixed``
   (it runs before the webhooks in kube-apiserver's plugin order);
3. the mutating webhooks (:func:`sim.kube.admission.admit`, failurePolicy included);
4. validation: RuntimeClass overhead unchanged, containers and resources valid (422);
5. the validating policy, if installed (the document's best practice: peer pods only in
   chosen namespaces);
6. storage (409 on a duplicate name), then the scheduling queue
   (:class:`sim.kube.schedulingqueue.SchedulingQueue`) binds it and the node's kubelet
   (:meth:`sim.kube.nodepool.NodePool.start_pod`) starts it.

An UPDATE goes through stages 1, 3 and the spec's immutability. The pipeline reads the API
objects (namespaces, RuntimeClasses, pods) the cluster stores, and holds the admission
configuration (webhooks, their caller, the policy); it never calls back into the cluster.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sim.bounds import excerpt
from sim.kube.admission import (
    DEFAULT_USER_INFO,
    AdmissionOutcome,
    MutatingWebhook,
    PeerPodNamespacePolicy,
    WebhookCaller,
    admit,
)
from sim.kube.podchecks import (
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
from sim.kube.scheduler import effective_request, node_amounts
from sim.kube.schedulingqueue import SchedulingQueue
from sim.peerpods.kata import PEER_POD_HANDLER

__all__ = ["ApiObjects", "PodPipeline", "is_peer_pod"]


@dataclass
class ApiObjects:
    """The API objects the pipeline reads and the pods it stores (the cluster's own tables)."""

    namespaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    runtime_classes: dict[str, dict[str, Any]] = field(default_factory=dict)
    pods: dict[tuple[str, str], PodState] = field(default_factory=dict)


def _meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _same_overhead(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return node_amounts(a, where="spec.overhead") == node_amounts(b, where="overhead.podFixed")


def is_peer_pod(pod: Mapping[str, Any], runtime_classes: Mapping[str, Mapping[str, Any]]) -> bool:
    """A peer pod runs under a RuntimeClass whose handler is kata-remote."""
    class_name = (pod.get("spec") or {}).get("runtimeClassName")
    if not class_name:
        return False
    runtime_class = runtime_classes.get(class_name)
    handler = runtime_class.get("handler") if runtime_class else class_name
    return handler == PEER_POD_HANDLER


class PodPipeline:
    """Admission, checks, storage and scheduling of a pod (see the module docstring).

    ``strict_runtime_classes``: kube-apiserver refuses a pod naming a RuntimeClass that does
    not exist; otherwise such a pod is admitted without overhead. ``default_requests_from_limits``:
    kube-apiserver defaults a missing request to the limit *before* the webhook sees the pod.
    """

    def __init__(
        self,
        objects: ApiObjects,
        queue: SchedulingQueue,
        *,
        webhooks: Sequence[MutatingWebhook],
        caller: WebhookCaller,
        user_info: Mapping[str, Any] | None = None,
        strict_runtime_classes: bool = False,
        default_requests_from_limits: bool = False,
    ) -> None:
        self.objects = objects
        self.queue = queue
        self.webhooks: list[MutatingWebhook] = list(webhooks)
        self.caller = caller
        self.user_info = dict(user_info if user_info is not None else DEFAULT_USER_INFO)
        self.strict_runtime_classes = strict_runtime_classes
        self.default_requests_from_limits = default_requests_from_limits
        self.policy: PeerPodNamespacePolicy | None = None

    def create(self, pod: Mapping[str, Any]) -> PodState:
        """Stages 1 to 6 for a new pod; raises :class:`AdmissionDenied` if refused."""
        candidate, namespace, name = self._decode(pod)
        self._runtime_class_admit(candidate, name)
        outcome = self._mutate(candidate, "CREATE", namespace)
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
        if key in self.objects.pods:
            raise AdmissionDenied(f'pods "{name}" already exists', code=409)
        request = effective_request(stored)
        state = PodState(pod=stored, phase="Pending")
        stored.setdefault("status", {})["phase"] = "Pending"
        self.objects.pods[key] = state
        self.queue.schedule(key, state, request)
        return replace(state)

    def update(self, pod: Mapping[str, Any]) -> PodState:
        """Re-submit an existing pod as an UPDATE through admission (OSC registers UPDATE).

        A pod's spec is immutable apart from images, so a webhook that changes anything
        else on UPDATE gets the update refused, as kube-apiserver refuses it.
        """
        candidate, namespace, name = self._decode(pod)
        key = (namespace, name)
        if key not in self.objects.pods:
            raise AdmissionDenied(f'pods "{name}" not found', code=404)
        state = self.objects.pods[key]
        old = state.pod
        outcome = self._mutate(candidate, "UPDATE", namespace, old_pod=old)
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

    # ------------------------------------------------------------------ the stages
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
        if namespace not in self.objects.namespaces:
            raise AdmissionDenied(f'namespaces "{namespace}" not found', code=404)
        check_quantities(candidate, name)
        if self.default_requests_from_limits:
            default_requests(candidate)
        return candidate, namespace, name

    def _mutate(
        self, pod: dict[str, Any], operation: str, namespace: str, *, old_pod: dict[str, Any] | None = None
    ) -> AdmissionOutcome:
        """Stage 3: the mutating webhooks, as registered now."""
        return admit(
            pod,
            operation=operation,
            namespace_obj=self.objects.namespaces[namespace],
            webhooks=self.webhooks,
            caller=self.caller,
            user_info=self.user_info,
            old_pod=old_pod,
        )

    def _runtime_class_admit(self, pod: dict[str, Any], name: str) -> None:
        """Stage 2: the RuntimeClass plugin sets ``spec.overhead`` from ``podFixed``."""
        class_name = pod["spec"].get("runtimeClassName")
        if not class_name:
            return
        runtime_class = self.objects.runtime_classes.get(class_name)
        if runtime_class is None:
            if self.strict_runtime_classes:
                raise AdmissionDenied(
                    f'pods "{name}" is forbidden: pod rejected: RuntimeClass "{class_name}" not found'
                )
            return
        pod_fixed = (runtime_class.get("overhead") or {}).get("podFixed")
        if not pod_fixed:
            return
        if pod["spec"].get("overhead") and not _same_overhead(pod["spec"]["overhead"], pod_fixed):
            raise overhead_mismatch(name)
        pod["spec"]["overhead"] = copy.deepcopy(pod_fixed)

    def _validate_admitted(self, pod: dict[str, Any], namespace: str, name: str) -> None:
        """Stages 4 and 5: the final object must be valid and the policy must allow it."""
        if _meta(pod).get("namespace", namespace) != namespace:
            raise invalid(name, "metadata.namespace: a webhook may not change the namespace")
        validate_pod(pod, name)
        class_name = (pod.get("spec") or {}).get("runtimeClassName")
        runtime_class = self.objects.runtime_classes.get(class_name or "")
        pod_fixed = ((runtime_class or {}).get("overhead") or {}).get("podFixed")
        if pod_fixed and not _same_overhead(pod["spec"].get("overhead") or {}, pod_fixed):
            raise overhead_mismatch(name)
        if self.policy is not None:
            denial = self.policy.denial(pod, namespace)
            if denial:
                raise AdmissionDenied(f'pods "{name or "<generated>"}" is forbidden: {denial}')
