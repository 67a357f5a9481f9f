"""Node agents: simulated worker nodes for a real control plane.

A :class:`NodeAgent` stands for what runs on one worker node of a peer-pods cluster:

* **the kubelet**: it registers the Node object (capacity ``cpu``/``memory``/``pods``,
  condition Ready), copies extended resources from ``status.capacity`` to
  ``status.allocatable`` as the kubelet's node-status loop does, admits each pod bound to
  its node (a pod naming its node directly can be refused, ``OutOf<resource>``), and sets
  the pod's status as the kubelet reports it;
* **the Kata runtime**: a pod whose RuntimeClass handler is ``kata-remote`` is a peer pod;
  the reference :class:`sim.peerpods.kata.KataRuntime` decodes its initdata and sizing annotations
  before any pod VM is requested (a broken one fails the sandbox: the pod stays Pending,
  waiting in ``ContainerCreating``, with a ``FailedCreatePodSandBox`` event);
* **the cloud-api-adaptor**: a process under test (``--adaptor-binary``: a
  :class:`~sim.harness.targets.adaptorprocess.remote.RemoteAdaptor` the agent calls as the Kata shim
  does; it patches the node itself), or the reference :class:`sim.peerpods.adaptor.CloudApiAdaptor`, reading
  ``peer-pods-cm`` from the API server when it starts; it patches the node's
  ``status.capacity`` with ``kata.peerpods.io/vm`` as CAA's ``k8sops.AdvertiseExtendedResources``
  does (a JSON patch on the status subresource; nothing when the limit is negative),
  removes it when it stops, and creates each peer pod's VM through the provider.

No container runs: a pod that is not a peer pod becomes Running at once; a peer pod
becomes Running once its pod VM exists. When its sandbox does not start (the Kata runtime
refuses it, or the adaptor cannot create the pod VM), it stays Pending with the reason in a
``FailedCreatePodSandBox`` event, as a real kubelet leaves it (a real kubelet then retries
``RunPodSandbox`` with back-off; the agent tries once).

:class:`NodeAgents` runs the agents of one control plane: a single watch on the pods bound
to any node (one connection rather than one per node) dispatches each pod to its node's agent.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import kubernetes.client as _client
import kubernetes.watch as _watch
from kubernetes.client.exceptions import ApiException

from sim.kube.scheduler import effective_request, node_amounts
from sim.peerpods.adaptor import AdaptorStartError, CloudApiAdaptor, NodeAdaptor, PodVMError
from sim.peerpods.kata import (
    PEER_POD_HANDLER,
    SANDBOX_FAILED,
    UPSTREAM_CONFIG,
    KataConfig,
    KataRuntime,
    SandboxError,
    sandbox_failed,
)
from sim.peerpods.providers import Provider

if TYPE_CHECKING:  # the adaptor processes need libvirt; the cluster target without them does not
    from sim.harness.targets.adaptorprocess.remote import RemoteAdaptor

#: The Kubernetes client, untyped here: objects are read as JSON-shaped data.
client: Any = _client
watch: Any = _watch

PEER_PODS_CM = "peer-pods-cm"
PEER_PODS_SECRET = "peer-pods-secret"
OSC_NAMESPACE = "openshift-sandboxed-containers-operator"
NODE_LABEL = "peerpods-conformance/simulated-node"
WATCH_TIMEOUT_S = 2
NOT_READY_TAINT = "node.kubernetes.io/not-ready"


def _escape(resource: str) -> str:
    """A resource name as a JSON-pointer segment (``kata.peerpods.io~1vm``)."""
    return resource.replace("~", "~0").replace("/", "~1")


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class PodRecord:
    """What a node agent did with one pod."""

    uid: str
    phase: str
    reason: str | None = None
    vm: str | None = None


class NodeAgent:
    """One simulated worker: kubelet + Kata runtime + cloud-api-adaptor (see the module doc)."""

    def __init__(
        self,
        name: str,
        api: Any,
        provider: Provider,
        *,
        caa_namespace: str = OSC_NAMESPACE,
        labels: Mapping[str, str] | None = None,
        kata_config: KataConfig = UPSTREAM_CONFIG,
        process: RemoteAdaptor | None = None,
    ) -> None:
        self.name = name
        self.api = api
        self.core = client.CoreV1Api(api)
        self.node_api = client.NodeV1Api(api)
        self.caa_namespace = caa_namespace
        self.labels = dict(labels or {})
        self.kata = KataRuntime(kata_config)
        #: The node's adaptor: an adaptor process under test, which patches the node itself, or
        #: the in-process reference, whose patch the agent sends on its behalf.
        self.process = process
        self.adaptor: NodeAdaptor = process if process is not None else CloudApiAdaptor(name, provider)
        self.pods: dict[tuple[str, str], PodRecord] = {}
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ kubelet: the node
    def register(self, *, cpu: str = "8", memory: str = "32Gi", pods: int = 110) -> None:
        """Create the Node object, then start the adaptor (which advertises the pod VM limit)."""
        data = self._peer_pods_data()
        if self.process is None:
            self._start_adaptor(data)  # a bad peer-pods-cm fails here, before the node exists
        base = {"cpu": str(cpu), "memory": str(memory), "pods": str(pods)}
        status = {
            "capacity": dict(base),
            "allocatable": dict(base),
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "simulated kubelet is posting ready status",
                    "lastHeartbeatTime": _now(),
                    "lastTransitionTime": _now(),
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": self.name},
            ],
            "nodeInfo": _node_info(),
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {"kubernetes.io/hostname": self.name, NODE_LABEL: "true", **self.labels},
            },
        }
        self.core.create_node(body)
        self.core.patch_node_status(self.name, {"status": status})
        self._untaint_ready()
        if self.process is not None:  # the DaemonSet's adaptor pod starts on the Ready node
            self._start_adaptor(data)
            self._sync_allocatable()
        else:
            self._advertise(self.adaptor.config.advertised if self.adaptor.config else None)

    def _untaint_ready(self) -> None:
        """kube-apiserver's TaintNodesByCondition plugin taints a new node not-ready; the node
        lifecycle controller (kube-controller-manager, not run here) lifts the taint once the
        node reports Ready, which the agent does in its place."""
        node = self.core.read_node(self.name)
        taints = list(node.spec.taints or [])
        kept = [t for t in taints if t.key != NOT_READY_TAINT]
        if len(kept) != len(taints):
            body = [
                {"op": "replace", "path": "/spec/taints", "value": self.api.sanitize_for_serialization(kept)}
            ]
            self.core.patch_node(self.name, body)

    def restart_adaptor(self, data: Mapping[str, str]) -> None:
        """The adaptor restarts: it re-reads peer-pods-cm and re-patches the node (a process
        withdraws its capacity as it stops and patches it again as it starts)."""
        self._start_adaptor(data)
        if self.process is not None:
            self._sync_allocatable()
        else:
            self._advertise(self.adaptor.config.advertised if self.adaptor.config else None)

    def _start_adaptor(self, data: Mapping[str, str]) -> None:
        """Start the adaptor process; one that exits at start-up (a broken global INITDATA)
        advertises nothing and keeps its exit message in ``adaptor.start_error``."""
        with contextlib.suppress(AdaptorStartError):
            self.adaptor.start(data)

    def stop(self) -> None:
        """The adaptor stops (removing its extended resource); then the Node object goes."""
        try:
            if self.process is not None:
                self.process.stop(reuse=False)
            else:
                self._advertise(None)
            self.core.delete_node(self.name)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def _advertise(self, value: int | None) -> None:
        """CAA's AdvertiseExtendedResources: a JSON patch on ``status.capacity``; then the
        kubelet's status loop mirrors extended resources into ``status.allocatable``."""
        node = self.core.read_node_status(self.name)
        capacity = node.status.capacity or {}
        path = f"/status/capacity/{_escape(self.adaptor.resource)}"
        if value is not None:
            self.core.patch_node_status(self.name, [{"op": "add", "path": path, "value": str(value)}])
        elif self.adaptor.resource in capacity:
            self.core.patch_node_status(self.name, [{"op": "remove", "path": path}])
        self._sync_allocatable()

    def _sync_allocatable(self) -> None:
        node = self.core.read_node_status(self.name)
        capacity = dict(node.status.capacity or {})
        allocatable = dict(node.status.allocatable or {})
        ops: list[dict[str, Any]] = []
        for resource in [r for r in allocatable if "/" in r and r not in capacity]:
            ops.append({"op": "remove", "path": f"/status/allocatable/{_escape(resource)}"})
        for resource, value in capacity.items():
            if "/" in resource and allocatable.get(resource) != value:
                ops.append({"op": "add", "path": f"/status/allocatable/{_escape(resource)}", "value": value})
        if ops:
            self.core.patch_node_status(self.name, ops)

    def _peer_pods_data(self) -> dict[str, str]:
        return deployed_environment(self.core, self.caa_namespace)

    # ------------------------------------------------------------------ kubelet: pods
    def pod_event(self, kind: str, pod: dict[str, Any]) -> None:
        """A pod bound to this node was added, changed or deleted."""
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        with self.lock:
            record = self.pods.get(key)
            if record is not None and record.uid != meta.get("uid"):
                self._release(key, record)  # a new pod of the same name
                record = None
            if kind == "DELETED" or meta.get("deletionTimestamp"):
                if record is not None:
                    self._release(key, record)
                if kind != "DELETED":
                    self._confirm_deletion(key, str(meta.get("uid")))
                return
            if record is None and (pod.get("status") or {}).get("phase", "Pending") == "Pending":
                self.pods[key] = self._start(pod)

    def _start(self, pod: dict[str, Any]) -> PodRecord:
        meta = pod["metadata"]
        record = PodRecord(uid=str(meta.get("uid")), phase="Pending")
        refusal = self._admit(pod)
        if refusal is not None:
            record.phase, record.reason = "Failed", refusal
            reason = refusal.split(":", 1)[0]
            self._set_status(pod, {"phase": "Failed", "reason": reason, "message": refusal})
            return record
        if self._is_peer_pod(pod):
            try:
                request = self.kata.sandbox_request(pod)
                try:
                    record.vm = self.adaptor.create_pod_vm(request)
                except PodVMError as exc:  # the shim's CreateVM failed: the sandbox did not start
                    raise sandbox_failed(pod, str(exc)) from None
            except SandboxError as exc:
                # kubelet retries the sandbox: the pod stays Pending and never runs.
                return self._sandbox_failed(pod, record, exc)
        record.phase = "Running"
        self._set_status(
            pod,
            {
                "phase": "Running",
                "hostIP": "127.0.0.1",
                "startTime": _now(),
                "conditions": [
                    {"type": cond, "status": "True", "lastTransitionTime": _now()}
                    for cond in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
                ],
                "containerStatuses": _container_statuses(pod),
            },
        )
        return record

    def _sandbox_failed(self, pod: dict[str, Any], record: PodRecord, error: SandboxError) -> PodRecord:
        """kubelet's view of a sandbox that did not start (``SyncPod`` in kubernetes
        ``pkg/kubelet/kuberuntime/kuberuntime_manager.go``): a ``FailedCreatePodSandBox``
        event, and a pod that stays Pending, its containers waiting in ContainerCreating,
        with no reason on the pod itself; kubelet retries with back-off."""
        record.reason = str(error)
        self._event(pod, SANDBOX_FAILED, f"Failed to create pod sandbox: {error.detail}")
        self._set_status(
            pod,
            {
                "phase": "Pending",
                "conditions": [
                    {"type": cond, "status": status, "lastTransitionTime": _now()}
                    for cond, status in (
                        ("PodReadyToStartContainers", "False"),
                        ("Initialized", "True"),
                        ("ContainersReady", "False"),
                        ("Ready", "False"),
                    )
                ],
                "containerStatuses": _container_statuses(pod, waiting="ContainerCreating"),
            },
        )
        return record

    def _admit(self, pod: dict[str, Any]) -> str | None:
        """The kubelet's resource admission: the pod must fit beside the pods already here."""
        node = self.core.read_node_status(self.name)
        allocatable = node_amounts(dict(node.status.allocatable or {}), where=f"node {self.name}")
        request = effective_request(pod)
        used: dict[str, int] = {}
        with self.lock:
            # every pod it admitted and that has not ended, a sandbox that does not start included
            others = [key for key, rec in self.pods.items() if rec.phase != "Failed"]
        for namespace, name in others:
            try:
                other = self.api.sanitize_for_serialization(self.core.read_namespaced_pod(name, namespace))
            except ApiException:
                continue
            for resource, amount in effective_request(other).items():
                used[resource] = used.get(resource, 0) + amount
        for resource, amount in sorted(request.items()):
            capacity = allocatable.get(resource, 0)
            if capacity - used.get(resource, 0) < amount:
                return (
                    f"OutOf{resource}: Pod was rejected: Node didn't have enough resource: {resource}, "
                    f"requested: {amount}, used: {used.get(resource, 0)}, capacity: {capacity}"
                )
        return None

    def _is_peer_pod(self, pod: Mapping[str, Any]) -> bool:
        class_name = (pod.get("spec") or {}).get("runtimeClassName")
        if not class_name:
            return False
        try:
            handler = self.node_api.read_runtime_class(class_name).handler
        except ApiException:
            return False
        return bool(handler == PEER_POD_HANDLER)

    def _release(self, key: tuple[str, str], record: PodRecord) -> None:
        """The pod is gone: the adaptor deletes its pod VM."""
        self.pods.pop(key, None)
        if record.vm is not None:
            self.adaptor.delete_pod_vm(record.vm)
            record.vm = None

    def _confirm_deletion(self, key: tuple[str, str], uid: str) -> None:
        """The kubelet confirms a graceful deletion once the pod's containers are gone."""
        try:
            self.core.delete_namespaced_pod(
                key[1],
                key[0],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(preconditions={"uid": uid}),
            )
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    def _set_status(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], {"status": status})
        except ApiException as exc:
            if exc.status != 404:  # deleted meanwhile
                raise

    def _event(self, pod: dict[str, Any], reason: str, message: str) -> None:
        meta = pod["metadata"]
        event = {
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
                "apiVersion": "v1",
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": "kubelet", "host": self.name},
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
            "count": 1,
        }
        with contextlib.suppress(ApiException):  # an event is best effort, as in the kubelet
            self.core.create_namespaced_event(meta["namespace"], event)

    def record(self, namespace: str, name: str) -> PodRecord | None:
        with self.lock:
            return self.pods.get((namespace, name))


def deployed_environment(core: Any, namespace: str) -> dict[str, str]:
    """An adaptor pod's environment as the DaemonSet's ``envFrom`` gives it: Secret
    ``peer-pods-secret``, then ConfigMap ``peer-pods-cm`` (a key in both takes the ConfigMap's
    value); either may be missing."""
    found: dict[str, str] = {}
    try:
        secret = core.read_namespaced_secret(PEER_PODS_SECRET, namespace)
        found.update({k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()})
    except ApiException as exc:
        if exc.status != 404:
            raise
    try:
        found.update(core.read_namespaced_config_map(PEER_PODS_CM, namespace).data or {})
    except ApiException as exc:
        if exc.status != 404:
            raise
    return found


def _container_statuses(pod: Mapping[str, Any], waiting: str | None = None) -> list[dict[str, Any]]:
    statuses = []
    for container in (pod.get("spec") or {}).get("containers") or ():
        state = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": _now()}}
        statuses.append(
            {
                "name": container.get("name"),
                "image": container.get("image") or "",
                "imageID": "",
                "ready": waiting is None,
                "started": waiting is None,
                "restartCount": 0,
                "state": state,
            }
        )
    return statuses


def _node_info() -> dict[str, str]:
    return {
        "machineID": "",
        "systemUUID": "",
        "bootID": "",
        "kernelVersion": "",
        "osImage": "simulated kubelet (peerpods-conformance node agent)",
        "containerRuntimeVersion": "kata-remote://simulated",
        "kubeletVersion": "simulated",
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": "s390x",
    }


class NodeAgents:
    """The node agents of one cluster and the single pod watch that feeds them."""

    def __init__(self, api: Any, on_error: Callable[[str], None] | None = None) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.agents: dict[str, NodeAgent] = {}
        self.errors: list[str] = []
        self._on_error = on_error
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()
        #: The uids of bound pods whose deletion the watch has delivered (and handed to their agent).
        self._gone: set[str] = set()
        self._gone_changed = threading.Condition()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="node-agents-watch", daemon=True)
        self._thread.start()

    def add(self, agent: NodeAgent) -> None:
        with self._lock:
            self.agents[agent.name] = agent

    def remove(self, name: str) -> NodeAgent | None:
        with self._lock:
            return self.agents.pop(name, None)

    def agent(self, name: str) -> NodeAgent | None:
        with self._lock:
            return self.agents.get(name)

    def record(self, namespace: str, name: str) -> PodRecord | None:
        with self._lock:
            agents = list(self.agents.values())
        for agent in agents:
            found = agent.record(namespace, name)
            if found is not None:
                return found
        return None

    def close(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread is not None:
            self._thread.join(WATCH_TIMEOUT_S + 5)

    def wait_handled_deletion(self, uid: str, timeout: float) -> bool:
        """Wait until the watch delivered the deletion of the bound pod ``uid`` to its agent (a
        binding the agents had not seen yet when the pod was deleted is then behind them too)."""
        with self._gone_changed:
            return self._gone_changed.wait_for(lambda: uid in self._gone, timeout)

    def _dispatch(self, kind: str, pod: dict[str, Any]) -> None:
        try:
            self._handle(kind, pod)
        finally:
            if kind == "DELETED":
                with self._gone_changed:
                    self._gone.add(str((pod.get("metadata") or {}).get("uid")))
                    self._gone_changed.notify_all()

    def _handle(self, kind: str, pod: dict[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        agent = self.agent(str(node)) if node else None
        if agent is None:
            return
        try:
            agent.pod_event(kind, pod)
        except Exception as exc:  # the watch must survive one pod's failure; the error is kept
            meta = pod.get("metadata") or {}
            message = f"node agent {agent.name}: pod {meta.get('namespace')}/{meta.get('name')}: {exc}"
            self.errors.append(message)
            if self._on_error:
                self._on_error(message)

    def _run(self) -> None:
        resource_version: str | None = None
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    listed = self.core.list_pod_for_all_namespaces(field_selector="spec.nodeName!=")
                    for item in listed.items:
                        self._dispatch("ADDED", self.api.sanitize_for_serialization(item))
                    resource_version = listed.metadata.resource_version
                    self.synced.set()
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector="spec.nodeName!=",
                    resource_version=resource_version,
                    timeout_seconds=WATCH_TIMEOUT_S,
                    allow_watch_bookmarks=True,
                ):
                    if self._stop.is_set():
                        break
                    raw = event.get("raw_object") or {}
                    resource_version = (raw.get("metadata") or {}).get("resourceVersion") or resource_version
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "ERROR":
                        resource_version = None
                        break
                    self._dispatch(event["type"], raw)
            except ApiException as exc:
                if exc.status == 410:
                    resource_version = None
                    continue
                if not self._stop.is_set():
                    self.errors.append(f"node agents: watch failed: {exc}")
                    time.sleep(0.2)
            except Exception as exc:  # a dropped connection: watch again from where it was
                if not self._stop.is_set():
                    self.errors.append(f"node agents: watch failed: {exc}")
                    time.sleep(0.2)
