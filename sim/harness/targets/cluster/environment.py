"""One scenario of the cluster target: what it asks of the API server (assessment), and the
deletion of what it made (teardown)."""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import secrets
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import kubernetes.client as _client
import kubernetes.config as _kube_config
from kubernetes.client.exceptions import ApiException

from sim.errors import ConformanceInputError, TargetError
from sim.harness.targets.base import (
    AdaptorProcess,
    Environment,
    ForwarderProbe,
    Guests,
    LibvirtFaults,
    LparCheck,
    LparInspection,
    Nodes,
    NotApplicable,
    PodOutcome,
    PodVMFacts,
    PodVMNetwork,
    PodVMs,
    WebhookEnv,
)
from sim.harness.targets.deployment import PeerPodsDeployment
from sim.kube import profiles
from sim.kube.scheduler import effective_request, format_amount
from sim.peerpods.kata import SANDBOX_FAILED, UPSTREAM_CONFIG, KataRuntime
from sim.peerpods.podvm import GuestReport
from sim.peerpods.providers import Provider
from sim.peerpods.providers.memory import MemoryProvider
from sim.peerpods.webhook import WebhookSettings

#: The Kubernetes client, untyped here: objects are read as JSON-shaped data.
client: Any = _client
kube_config: Any = _kube_config

if TYPE_CHECKING:
    from sim.harness.targets.cluster.target import ClusterTarget

#: The peer-pods RuntimeClass the chart deploys: the webhook's default target.
RUNTIME_CLASS_NAME = WebhookSettings().target_runtimeclass
#: RuntimeClasses the features name besides kata-remote (kube-apiserver refuses a pod naming
#: a class that does not exist; a cluster with Kata installed has these).
OTHER_RUNTIME_CLASSES = ("kata", "kata-remote-se")
OSC_NAMESPACE = "openshift-sandboxed-containers-operator"
RUN_LABEL = "peerpods-conformance/run"
POLICY_NAME = "peer-pods-allowed-namespaces"
#: How long a pod may take to be bound and started (or found unschedulable).
SETTLE_TIMEOUT_S = 15.0
#: After nodes or resources change, how long a waiting pod gets to be retried by
#: kube-scheduler (its back-off is 1 s on the local control plane).
RETRY_WINDOW_S = 2.5
#: How long kube-apiserver may take to see a new webhook configuration or policy.
CONFIG_SETTLE_S = 3.0
POLL_S = 0.02
#: kube-apiserver's refusal of a body it cannot decode (an unparsable quantity, for one).
DECODE_REFUSAL = "cannot be handled as a Pod"


def _api_message(exc: ApiException) -> str:
    """kube-apiserver's Status message (what kubectl prints), else the raw reason."""
    try:
        body = json.loads(exc.body or "")
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return f"{exc.status} {exc.reason}: {exc.body}"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ApiServerEnvironment(
    Environment,
    WebhookEnv,
    Nodes,
    PodVMs,
    Guests,
    LparInspection,
    LibvirtFaults,
    AdaptorProcess,
    PodVMNetwork,
):
    """One scenario on a real API server."""

    def __init__(self, target: ClusterTarget, provider: Provider) -> None:
        self.t = target
        self.api = target.api
        self.core = client.CoreV1Api(self.api)
        self.admission = client.AdmissionregistrationV1Api(self.api)
        self.provider = provider
        #: the pod VMs the adaptor processes under test made, read back (--adaptor-binary)
        self._observed: Any = provider if target.adaptors is not None else None
        #: what a scenario adds to the adaptor processes' environment: the LPAR's libvirt failing
        #: (sim.lpar.libvirt_faults), the reference adaptor's silent guests
        self._extra: dict[str, str] = {}
        #: the libvirt provider (the lpar target's), when the in-process adaptors make libvirt domains
        self._libvirt: Any = provider if target.lpar is not None and self._observed is None else None
        self._pods: list[tuple[str, str]] = []
        self._refused: dict[tuple[str, str], PodOutcome] = {}
        self._nodes: list[str] = []
        self._kata_config = UPSTREAM_CONFIG
        self._namespaces: set[str] = set()
        self._settings = WebhookSettings()  # the webhook server's (upstream's defaults to start with)
        self._profile = profiles.DEFAULT_PROFILE
        self._failure_policy: str | None = None
        self._configuration: Path | None = None
        self._unreachable = False
        self._mwc_dirty = target.local
        self._mwc_names: set[str] = set()
        self._policy = False
        self._changed_at = 0.0
        #: peer-pods-cm as deployed, with the scenario's keys (no peer-pods-secret here: the
        #: node agents' adaptors read the ConfigMap only, whatever the profile)
        self.deployment = PeerPodsDeployment()
        if target.local:
            self.set_peer_pods_config({})

    # ------------------------------------------------------------------ configuration
    def _local_only(self, what: str) -> None:
        if not self.t.local:
            raise NotApplicable(
                f"{what} cannot be done on a cluster given by --kubeconfig (it is as deployed)"
            )

    def use_webhook_profile(self, profile: str, *, failure_policy: str | None = None) -> None:
        profiles.path(profile)  # an unknown profile is named
        if not self.t.local:
            self._check_deployed(profile, failure_policy)
            return
        self._profile, self._failure_policy, self._configuration = profile, failure_policy, None
        self._mwc_dirty = True

    def _check_deployed(self, profile: str, failure_policy: str | None) -> None:
        """On a given cluster the webhook is as deployed: the scenario applies only if the
        deployed registration is the profile's (same webhook name, rules, namespaceSelector,
        failurePolicy)."""
        wanted = [
            webhook
            for document in profiles.documents(profiles.path(profile))
            for webhook in document.get("webhooks") or ()
        ]
        deployed: dict[str, dict[str, Any]] = {}
        for item in self.admission.list_mutating_webhook_configuration().items:
            for webhook in self.api.sanitize_for_serialization(item).get("webhooks") or ():
                deployed[webhook["name"]] = webhook
        for webhook in wanted:
            found = deployed.get(webhook["name"])
            if found is None:
                raise NotApplicable(
                    f"no webhook {webhook['name']!r} is deployed on the given cluster (profile {profile!r})"
                )
            policy = failure_policy or webhook.get("failurePolicy", "Fail")
            for field_name, value in (
                ("namespaceSelector", webhook.get("namespaceSelector") or {}),
                ("rules", webhook.get("rules") or []),
                ("failurePolicy", policy),
            ):
                have = found.get(field_name)
                if field_name == "rules":
                    have = [{k: v for k, v in rule.items() if k != "scope"} for rule in have or []]
                if have != value:
                    raise NotApplicable(
                        f"the deployed webhook {webhook['name']!r} is not registered as in the {profile!r} "
                        f"profile: its {field_name} is {have!r}, the profile's {value!r}"
                    )

    def use_deployment_profile(self, profile: str) -> None:
        """The webhook registration of ``profile``, and its Kata runtime configuration on every node."""
        self.use_webhook_profile(profile)
        self._kata_config = profiles.KATA_CONFIGS[profile]
        for name in self._nodes:
            agent = self.t.agents.agent(name)
            if agent is not None:
                agent.kata = KataRuntime(self._kata_config)
        if profile == "openshift" and self.t.local:  # the libvirt connection keys move to peer-pods-secret
            self.deployment.use_profile(profile)
            self.set_peer_pods_secret(self.deployment.secret_overrides)
            self.set_peer_pods_config(self.deployment.configmap_overrides)

    def use_deployed_webhook_configuration(self, profile: str) -> None:
        self.use_webhook_profile(profile)

    def use_webhook_configuration(self, path: Path) -> None:
        self._local_only("registering another MutatingWebhookConfiguration")
        self._configuration = path
        self._mwc_dirty = True

    def make_webhook_unreachable(self) -> None:
        self._local_only("making the deployed webhook unreachable")
        self._unreachable = True
        self._mwc_dirty = True

    def set_webhook_env(self, name: str, value: str) -> None:
        self._local_only(f"setting the webhook's {name}")
        self._settings = self._settings.with_env(name, value)
        self._mwc_dirty = True

    def use_sizing_annotations(self, enabled: bool) -> None:
        if not enabled:
            raise NotApplicable("the reference webhook server has no switch for the document's profile")

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        wanted = {**dict(labels or {}), "kubernetes.io/metadata.name": name}
        if not self.t.local:
            wanted[RUN_LABEL] = self.t.run_id
        try:
            self.core.read_namespace(name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespace({"metadata": {"name": name, "labels": wanted}})
            if not self.t.local:
                self.t.created_namespaces.add(name)
            self._namespaces.add(name)
            return
        if not self.t.local:
            return  # somebody else's namespace (default, kube-system, ...): used as it is, never changed
        # the local cluster keeps namespaces between scenarios (no namespace controller runs
        # to delete them); each scenario gets exactly the labels it asks for
        patch = [{"op": "replace", "path": "/metadata/labels", "value": wanted}]
        self.core.patch_namespace(name, patch)
        self._namespaces.add(name)

    def allow_peer_pods_only_in(self, namespaces: list[str]) -> None:
        self._local_only("installing a cluster-wide admission policy")
        allowed = ", ".join(sorted(namespaces)) or "none"
        listed = ", ".join(f"'{n}'" for n in sorted(namespaces))
        guarded = self._settings.target_runtimeclass
        policy = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": POLICY_NAME},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"!has(object.spec.runtimeClassName) || "
                        f"object.spec.runtimeClassName != '{guarded}' || request.namespace in [{listed}]",
                        "messageExpression": f"'runtimeClassName {guarded} is not allowed in namespace ' + "
                        f"request.namespace + ' (peer pods are allowed only in: {allowed})'",
                    }
                ],
            },
        }
        binding = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": f"{POLICY_NAME}-binding"},
            "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]},
        }
        self._delete_policy()
        self.admission.create_validating_admission_policy(policy)
        self.admission.create_validating_admission_policy_binding(binding)
        self._policy = True
        self._policy_pending = [n for n in ("kube-system",) if n not in namespaces]

    def _delete_policy(self) -> None:
        with contextlib.suppress(ApiException):
            self.admission.delete_validating_admission_policy_binding(f"{POLICY_NAME}-binding")
        with contextlib.suppress(ApiException):
            self.admission.delete_validating_admission_policy(POLICY_NAME)

    def set_peer_pods_config(self, data: Mapping[str, str]) -> None:
        self._local_only("setting peer-pods-cm")
        from sim.peerpods.adaptor import AdaptorConfig

        previous = self.deployment.configmap_overrides
        self.deployment.set_configmap(data)
        manifest = self.deployment.configmap()
        try:
            AdaptorConfig.from_configmap(manifest["data"])  # a bad value is the caller's error, named
        except Exception:
            self.deployment.set_configmap(previous)  # nothing of the refused map is kept
            raise
        name = manifest["metadata"]["name"]
        namespace = manifest["metadata"].get("namespace") or OSC_NAMESPACE
        manifest["metadata"]["namespace"] = namespace
        if self._libvirt is not None:  # the provider reads the libvirt keys of the same map
            self._libvirt.configure(self.deployment.provider_environment(self.t.lpar.cm_overrides))
        try:
            self.core.replace_namespaced_config_map(name, namespace, manifest)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_config_map(namespace, manifest)

    def add_node(self, name: str) -> None:
        self._local_only(f"adding node {name}")
        from sim.harness.targets.cluster.nodeagent import NodeAgent

        agent = NodeAgent(
            name, self.api, self.provider, kata_config=self._kata_config, process=self._adaptor_process(name)
        )
        self.t.agents.add(agent)  # before it registers: a failed start is still stopped and removed
        self._nodes.append(name)
        agent.register()
        self._changed_at = time.monotonic()

    def set_peer_pods_secret(self, data: Mapping[str, str]) -> None:
        """Apply Secret ``peer-pods-secret`` (adaptor processes read it at their next start)."""
        self._local_only("setting peer-pods-secret")
        self.deployment.set_secret(data)
        manifest = self.deployment.secret()
        manifest["metadata"]["namespace"] = OSC_NAMESPACE
        try:
            self.core.replace_namespaced_secret(manifest["metadata"]["name"], OSC_NAMESPACE, manifest)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.core.create_namespaced_secret(OSC_NAMESPACE, manifest)

    def adaptor_error(self, node: str) -> str | None:
        """Why the node's adaptor process is not running (what it printed as it exited), or None."""
        agent = self.t.agents.agent(node)
        return agent.adaptor.start_error if agent is not None else None

    def _adaptor_process(self, node: str) -> Any:
        """With --adaptor-binary: the node's adaptor process, given what a DaemonSet pod on the
        node has (the deployment's keys, the LPAR, its node's name, the API server); else None."""
        adaptors, incluster = self.t.adaptors, self.t.incluster
        if adaptors is None or incluster is None:
            return None
        from sim.harness.targets.adaptorprocess.remote import RemoteAdaptor

        incluster.add_node(node)  # its worker machine's network namespace
        return RemoteAdaptor(
            node,
            adaptors.launcher,
            environment=lambda deployment: {
                **deployment,
                **adaptors.adaptor_overrides(),
                **self._extra,
                **incluster.environment(node),
            },
            domains=self._observed.domains,
            netns=adaptors.pod_netns,
            reclaim=self._observed.delete_instance,
            reuse=False,
        )

    def restart_adaptors(self) -> None:
        self._local_only("restarting the cloud-api-adaptors")
        from sim.harness.targets.cluster.nodeagent import deployed_environment
        from sim.peerpods.adaptor import AdaptorConfig

        data = deployed_environment(self.core, OSC_NAMESPACE)

        AdaptorConfig.from_configmap(data)
        for name in self._nodes:
            agent = self.t.agents.agent(name)
            if agent is not None:
                agent.restart_adaptor(data)
        self._changed_at = time.monotonic()

    # ------------------------------------------------------------------ the webhook registration
    def _sync_webhook(self) -> None:
        """(Re)register the MutatingWebhookConfiguration if the scenario changed it."""
        if not self._mwc_dirty or not self.t.local:
            return
        assert self.t.webhooks is not None
        server = self.t.webhooks.get(self._settings.to_env())
        url = server.url
        if self._unreachable:
            url = f"https://127.0.0.1:{_closed_port()}/mutate-v1-pod"
        ca_bundle = base64.b64encode(server.ca.read_bytes()).decode()
        path = self._configuration or profiles.path(self._profile)
        documents = profiles.documents(path, self._failure_policy)
        self._delete_webhooks()
        for document in documents:
            if document.get("kind") != "MutatingWebhookConfiguration":
                continue
            for webhook in document.get("webhooks") or ():
                webhook["clientConfig"] = {"url": url, "caBundle": ca_bundle}
            document.setdefault("metadata", {})
            document["metadata"].pop("resourceVersion", None)
            self.admission.create_mutating_webhook_configuration(document)
            self._mwc_names.add(document["metadata"]["name"])
        self._mwc_dirty = False
        self._wait_webhook_seen()

    def _wait_webhook_seen(self) -> None:
        """kube-apiserver reads webhook configurations through an informer: a dry-run probe
        pod shows when the new one is in force (mutated, or refused by the webhook)."""
        probe_ns = "default"
        probe: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"peerpods-probe-{secrets.token_hex(3)}", "namespace": probe_ns},
            "spec": {
                "runtimeClassName": self._settings.target_runtimeclass,
                "containers": [{"name": "probe", "image": "probe"}],
            },
        }
        if probe["spec"]["runtimeClassName"] not in (RUNTIME_CLASS_NAME, *OTHER_RUNTIME_CLASSES):
            return
        deadline = time.monotonic() + CONFIG_SETTLE_S
        while time.monotonic() < deadline:
            try:
                made = self.core.create_namespaced_pod(probe_ns, probe, dry_run="All")
            except ApiException as exc:
                if "webhook" in _api_message(exc):
                    return
            else:
                limits = (made.spec.containers[0].resources.limits or {}) if made.spec.containers else {}
                if self._settings.extended_resource in limits:
                    return
            time.sleep(0.05)

    def _delete_webhooks(self) -> None:
        for name in sorted(self._mwc_names):
            with contextlib.suppress(ApiException):
                self.admission.delete_mutating_webhook_configuration(name)
        self._mwc_names.clear()

    # ------------------------------------------------------------------ pods
    def create_pod(self, manifest: Mapping[str, Any], *, operation: str = "CREATE") -> PodOutcome:
        self._sync_webhook()
        if self._policy:
            self._wait_policy_seen()
        body = copy.deepcopy(dict(manifest))
        meta = body.setdefault("metadata", {})
        namespace = str(meta.setdefault("namespace", "default"))
        if not self.t.local:  # on somebody else's cluster, everything the suite makes says so
            meta["labels"] = {**(meta.get("labels") or {}), RUN_LABEL: self.t.run_id}
        key = (namespace, str(meta.get("name", "")))
        try:
            if operation == "UPDATE":
                current = self.core.read_namespaced_pod(key[1], namespace)
                meta["resourceVersion"] = current.metadata.resource_version
                made = self.core.replace_namespaced_pod(key[1], namespace, body)
            else:
                made = self.core.create_namespaced_pod(namespace, body)
        except ApiException as exc:
            if exc.status == 400 and DECODE_REFUSAL in _api_message(exc):
                # what the webhook answers such a pod cannot be asked through kube-apiserver
                raise NotApplicable(
                    f"kube-apiserver refuses pod {namespace}/{key[1]} while decoding it, before any webhook "
                    f"is called: {_api_message(exc)}"
                ) from None
            if exc.status in (400, 403, 404, 409, 422, 500):
                outcome = PodOutcome(admitted=False, pod=None, denial=_api_message(exc))
                self._refused[key] = outcome
                return outcome
            raise TargetError(
                f"kube-apiserver: creating pod {namespace}/{key[1]}: {_api_message(exc)}"
            ) from exc
        key = (namespace, str(made.metadata.name))
        self._refused.pop(key, None)
        if key not in self._pods:
            self._pods.append(key)
        return self._settled(key, deadline=time.monotonic() + SETTLE_TIMEOUT_S)

    def _wait_policy_seen(self) -> None:
        pending = getattr(self, "_policy_pending", [])
        if not pending:
            return
        probe = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "peerpods-policy-probe", "namespace": pending[0]},
            "spec": {
                "runtimeClassName": self._settings.target_runtimeclass,
                "containers": [{"name": "probe", "image": "probe"}],
            },
        }
        deadline = time.monotonic() + CONFIG_SETTLE_S
        while time.monotonic() < deadline:
            try:
                self.core.create_namespaced_pod(pending[0], probe, dry_run="All")
            except ApiException as exc:
                if "ValidatingAdmissionPolicy" in _api_message(exc):
                    break
            time.sleep(0.05)
        self._policy_pending = []

    def _read(self, key: tuple[str, str]) -> dict[str, Any] | None:
        try:
            pod = self.core.read_namespaced_pod(key[1], key[0])
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        result: dict[str, Any] = self.api.sanitize_for_serialization(pod)
        return result

    def _outcome(self, pod: dict[str, Any]) -> tuple[PodOutcome, bool]:
        """The pod as a PodOutcome, and whether it has settled (nothing more will happen soon)."""
        meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
        phase = status.get("phase") or "Pending"
        node = spec.get("nodeName")
        record = self.t.agents.record(str(meta.get("namespace")), str(meta.get("name")))
        vm = record.vm if record is not None and record.uid == meta.get("uid") else None
        outcome = PodOutcome(admitted=True, pod=pod, phase=phase, node=node, vm=vm)
        if phase in ("Running", "Failed", "Succeeded"):
            outcome.reason = status.get("message")
            return outcome, True
        if node:
            if self.t.agents.agent(str(node)) is None and node not in self._nodes:
                outcome.reason = f'node "{node}" not found: the pod waits for it'
                return outcome, True
            why = self._sandbox_failure(pod)
            if why is not None:  # the kubelet's event says why the sandbox does not start
                outcome.reason = why
                return outcome, True
            return outcome, False  # bound: the node's kubelet has not reported yet
        for condition in status.get("conditions") or ():
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                outcome.reason = condition.get("message") or condition.get("reason")
                return outcome, True
        return outcome, False

    def _sandbox_failure(self, pod: dict[str, Any]) -> str | None:
        """The latest ``FailedCreatePodSandBox`` event of a bound Pending pod, as kubectl
        describe shows it; kubelet records why a sandbox does not start only there, not in
        the pod's status. Asked once the kubelet has synced the pod (its
        ``PodReadyToStartContainers`` condition is False)."""
        conditions = (pod.get("status") or {}).get("conditions") or ()
        if not any(
            c.get("type") == "PodReadyToStartContainers" and c.get("status") == "False" for c in conditions
        ):
            return None
        meta = pod.get("metadata") or {}
        found = self.core.list_namespaced_event(
            str(meta.get("namespace")),
            field_selector=f"involvedObject.uid={meta.get('uid')},reason={SANDBOX_FAILED}",
        )
        if not found.items:
            return None
        latest = max(found.items, key=lambda e: e.last_timestamp or e.metadata.creation_timestamp)
        return f"{SANDBOX_FAILED}: {latest.message}"

    def _settled(self, key: tuple[str, str], *, deadline: float) -> PodOutcome:
        while True:
            pod = self._read(key)
            if pod is None:
                raise TargetError(f"pod {key[0]}/{key[1]} disappeared")
            outcome, settled = self._outcome(pod)
            # only an unbound pod can still be placed by kube-scheduler's retry; a bound one
            # whose kubelet reported why its sandbox does not start has settled
            retrying = (
                outcome.phase == "Pending"
                and not outcome.node
                and time.monotonic() - self._changed_at < RETRY_WINDOW_S
            )
            if (settled and not retrying) or time.monotonic() > deadline:
                if not settled and outcome.reason is None:
                    outcome.reason = "not yet scheduled or started"
                return outcome
            time.sleep(POLL_S)

    def delete_pod(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        record = self.t.agents.record(namespace, name)
        try:
            last = self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status == 404:
                raise ConformanceInputError(f'pods "{name}" not found in namespace {namespace}') from None
            raise
        self._changed_at = time.monotonic()
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        last_pod: Any = self.api.sanitize_for_serialization(last) or {}
        # bound when it went: its agent may not have seen the binding yet (then it starts the pod
        # VM late, and releases it on the deletion that follows); wait for that deletion
        bound = self.t.local and bool((last_pod.get("spec") or {}).get("nodeName"))
        uid = str((last_pod.get("metadata") or {}).get("uid"))
        if bound and not self.t.agents.wait_handled_deletion(uid, SETTLE_TIMEOUT_S):
            raise TargetError(
                f"the node agents did not see pod {namespace}/{name} go within {SETTLE_TIMEOUT_S} s"
            )
        while record is not None and self.t.agents.record(namespace, name) is record:
            if time.monotonic() > deadline:
                raise TargetError(
                    f"the node agent did not release pod {namespace}/{name} within {SETTLE_TIMEOUT_S} s"
                )
            time.sleep(POLL_S)
        if key in self._pods:
            self._pods.remove(key)

    def get_pod(self, namespace: str, name: str) -> PodOutcome:
        if (namespace, name) in self._refused:
            return self._refused[(namespace, name)]
        if self._read((namespace, name)) is None:
            raise ConformanceInputError(f'pods "{name}" not found in namespace {namespace}')
        outcome = self._settled((namespace, name), deadline=time.monotonic() + SETTLE_TIMEOUT_S)
        if self._libvirt is None:
            return outcome
        from sim.harness.targets.lparhost import with_guest_failure  # libvirt-python: only with --libvirt-uri

        return with_guest_failure(self._libvirt, outcome)

    def node_capacity(self, node: str) -> dict[str, str]:
        self._local_only("reading a node of the given cluster")
        found = self.core.read_node_status(node)
        return {str(k): str(v) for k, v in (found.status.capacity or {}).items()}

    def node_allocated(self, node: str) -> dict[str, str]:
        self._local_only("reading a node of the given cluster")
        pods = self.core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={node}")
        total: dict[str, int] = {}
        for item in pods.items:
            pod = self.api.sanitize_for_serialization(item)
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for resource, amount in effective_request(pod).items():
                total[resource] = total.get(resource, 0) + amount
        return {r: format_amount(r, a) for r, a in sorted(total.items())}

    def _vm(self, namespace: str, name: str) -> str:
        outcome = self.get_pod(namespace, name)
        if outcome.vm is None:
            raise AssertionError(f"pod {namespace}/{name} has no pod VM ({outcome.phase}: {outcome.reason})")
        return outcome.vm

    def pod_vm(self, namespace: str, name: str) -> PodVMFacts:
        self._local_only("reading pod VMs")
        return cast(PodVMFacts, self.provider.describe(self._vm(namespace, name)))

    def guest_report(self, namespace: str, name: str) -> GuestReport:
        self._local_only("reading pod VMs")
        return self.provider.guest_report(self._vm(namespace, name))

    def probe_forwarder(self, namespace: str, name: str) -> ForwarderProbe:
        if self._observed is None:
            raise NotApplicable(
                "the pod VMs' own network is entered only where adaptor processes boot them in the run's "
                "LPAR (--adaptor-binary); the in-process adaptors' pod VMs boot their kernel directly"
            )
        return cast(ForwarderProbe, self._observed.probe_forwarder(self._vm(namespace, name)))

    def leftovers(self) -> list[str]:
        """The pod VMs that still exist (what the node agents' adaptors hold); with adaptor
        processes, every domain and volume libvirt holds of them."""
        if self._observed is not None:
            return list(self._observed.libvirt.leftovers())
        return [f"domain {name}" for name in self.pod_vms()]

    def pod_vms(self) -> list[str]:
        self._local_only("listing pod VMs")
        libvirt = self._observed.libvirt if self._observed is not None else self._libvirt
        if libvirt is not None:  # what libvirt has, not what the agents believe
            return [e.split(" ", 1)[1] for e in libvirt.leftovers() if e.startswith("domain ")]
        found = []
        for namespace, name in self._pods:
            record = self.t.agents.record(namespace, name)
            if record is not None and record.vm is not None:
                found.append(record.vm)
        return sorted(found)

    def lpar_checks(self, description: Path | None) -> list[LparCheck]:
        if self._observed is not None:
            raise NotApplicable(
                "the LPAR's prerequisites are not the adaptor's doing; the lpar target judges them "
                "(the pod VMs here run on the LPAR the run made)"
            )
        if self.t.lpar is None:
            raise NotApplicable("the cluster target has no LPAR to inspect (give --libvirt-uri)")
        checks: list[LparCheck] = self.t.lpar.lpar_checks(description)
        return checks

    # --- fault injection: the lpar target's own, on the same libvirt provider ------------
    def inject_libvirt_fault(self, step: str) -> None:
        if self.t.adaptors is not None:  # the LPAR fails it in every adaptor process, restarted
            self._extra.update(self.t.adaptors.libvirt_fault(step))
            self.restart_adaptors()
            return
        if self._libvirt is None:
            raise NotApplicable("pod VMs are not libvirt domains here (give --libvirt-uri)")
        self._libvirt.inject_fault(step)

    def silence_guests(self, timeout: float) -> None:
        if self.t.adaptors is not None:
            from sim.harness.targets.adaptorprocess.host import SILENT_GUESTS_NA
            from sim.peerpods.adaptorservice import SEAM_SILENT

            if not self.t.adaptors.launcher.reference:
                raise NotApplicable(SILENT_GUESTS_NA)
            self._extra[SEAM_SILENT] = f"{timeout:g}"
            self.restart_adaptors()
            return
        if self._libvirt is None:
            raise NotApplicable("no guests boot here (give --libvirt-uri qemu:///system)")
        if self._libvirt.simulated:
            raise NotApplicable("the libvirt simulator boots no guests")
        self._libvirt.silence_guests(timeout)

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        errors: list[str] = []
        for namespace, name in list(self._pods):
            try:
                self.delete_pod(namespace, name)
            except (ConformanceInputError, ApiException):
                pass
            except TargetError as exc:
                errors.append(str(exc))
        if self.t.local:
            for name in self._nodes:
                agent = self.t.agents.remove(name)
                if agent is not None:
                    agent.stop()
            if self.t.adaptors is not None:  # the pods' namespaces, then the nodes' they tunnel from
                self.t.adaptors.release_pod_namespaces()
            if self.t.incluster is not None:
                for name in self._nodes:
                    self.t.incluster.remove_node(name)
            self._delete_webhooks()
            if self._policy:
                self._delete_policy()
        left = self.provider.instances() if isinstance(self.provider, MemoryProvider) else []
        if isinstance(self.provider, MemoryProvider):
            self.provider.close()
        if self._libvirt is not None:
            self._libvirt.stop_all()
            left = self._libvirt.leftovers()
            self._libvirt.remove_leftovers()
        if self._observed is not None and self.t.adaptors is not None:
            self.t.adaptors.release_pod_namespaces()
            left = self._observed.libvirt.leftovers()
            self._observed.libvirt.remove_leftovers()
        if left:
            errors.append(f"pod VMs left behind: {', '.join(left)}")
        errors += self.t.agents.errors
        self.t.agents.errors.clear()
        if errors:
            raise TargetError("; ".join(errors))
