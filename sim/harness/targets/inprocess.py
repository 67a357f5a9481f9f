"""The in-process environment the ``reference`` and ``lpar`` targets share (not a target).

:class:`InProcessEnvironment` drives a :class:`sim.kube.cluster.Cluster` (API server admission,
the webhook, scheduler, one cloud-api-adaptor per node) with a pod VM provider; the
reference target gives it the in-memory provider, the ``lpar`` target gives it libvirt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from sim.bounds import read_text_bounded
from sim.harness.targets.base import (
    AdaptorProcess,
    Environment,
    Nodes,
    PodOutcome,
    PodVMFacts,
    PodVMs,
    WebhookCalls,
    WebhookEnv,
)
from sim.harness.targets.deployment import PeerPodsDeployment
from sim.kube import profiles
from sim.kube.admission import (
    InProcessWebhookCaller,
    MutatingWebhook,
    RecordingCaller,
    SidecarInjector,
    WebhookCallError,
    load_webhook_configuration,
    sidecar_webhook,
)
from sim.kube.cluster import AdmissionDenied, Cluster, PodState
from sim.kube.nodepool import AdaptorFactory
from sim.paths import FIXTURES_DIR
from sim.peerpods.kata import KataRuntime
from sim.peerpods.podvm import GuestReport
from sim.peerpods.providers import Provider
from sim.peerpods.webhook import WebhookSettings
from sim.yamlload import load_all, load_one

FIXTURES = FIXTURES_DIR
RUNTIME_CLASS = FIXTURES / "cluster" / "runtimeclass-kata-remote.yaml"
OTHER_RUNTIME_CLASSES = FIXTURES / "cluster" / "runtimeclasses-other.yaml"


def load_yaml(path: Path) -> dict[str, Any]:
    """A fixture manifest."""
    document: dict[str, Any] = load_one(read_text_bounded(path, what="fixture"), source=str(path))
    return document


#: Where the caa-chart profile's Service points (peer-pods-webhook-webhook-service).
SERVICE_HOST = "peer-pods-webhook-webhook-service.peer-pods-webhook-system.svc"
SERVICE_IP = "10.96.112.10"


class SwitchableWebhookCaller:
    """Calls the reference webhook in process with the scenario's settings.

    ``reachable = False`` makes every call fail exactly as the HTTPS caller fails on a
    refused connection, so failurePolicy can be exercised without a network.
    """

    def __init__(self) -> None:
        self.settings = WebhookSettings()
        self.reachable = True

    def __call__(self, webhook: MutatingWebhook, review: dict[str, Any]) -> dict[str, Any]:
        if not self.reachable:
            # kube-apiserver's words for a refused connection (measured on v1.37.2), with the
            # address the chart's Service would have
            url = f"https://{SERVICE_HOST}:443{webhook.path or ''}?timeout={webhook.timeout_seconds}s"
            refused = f"dial tcp {SERVICE_IP}:443: connect: connection refused"
            raise WebhookCallError(f'failed to call webhook: Post "{url}": {refused}')
        return InProcessWebhookCaller(self.settings)(webhook, review)


class InProcessEnvironment(Environment, WebhookEnv, Nodes, PodVMs, WebhookCalls, AdaptorProcess):
    """One scenario on the in-process cluster, with pod VMs from ``provider``."""

    def __init__(self, provider: Provider, adaptor_factory: AdaptorFactory | None = None) -> None:
        self._provider = provider
        self._caller = SwitchableWebhookCaller()
        self._recorder = RecordingCaller(self._caller)
        # The API server defaults a missing request to its limit before any webhook sees
        # the pod; the reference cluster does the same, as a real one would.
        self._cluster = Cluster(
            webhooks=profiles.webhooks(profiles.DEFAULT_PROFILE),
            caller=self._recorder,
            provider=provider,
            settings=self._caller.settings,
            default_requests_from_limits=True,
            strict_runtime_classes=True,  # kube-apiserver refuses a pod naming an unknown class
            adaptor_factory=adaptor_factory,
        )
        self._cluster.apply_runtime_class(load_yaml(RUNTIME_CLASS))
        others = read_text_bounded(OTHER_RUNTIME_CLASSES, what="fixture")
        for other in load_all(others, source=str(OTHER_RUNTIME_CLASSES)):
            self._cluster.apply_runtime_class(other)
        #: peer-pods-cm and peer-pods-secret as deployed, with the scenario's keys
        self.deployment = PeerPodsDeployment()
        self.set_peer_pods_config({})
        self._refused: dict[tuple[str, str], PodOutcome] = {}

    # --- configuration -------------------------------------------------------------------
    def use_webhook_profile(self, profile: str, *, failure_policy: str | None = None) -> None:
        self._cluster.webhooks = profiles.webhooks(profile, failure_policy)

    def use_deployed_webhook_configuration(self, profile: str) -> None:
        """The suite deploys the webhook itself: what is deployed is the profile's."""
        self.use_webhook_profile(profile)

    def use_deployment_profile(self, profile: str) -> None:
        self.use_webhook_profile(profile)
        self._cluster.kata = KataRuntime(profiles.KATA_CONFIGS[profile])
        if profile == "openshift":  # the libvirt connection keys move to peer-pods-secret
            self.deployment.use_profile(profile)
            self.set_peer_pods_secret(self.deployment.secret_overrides)
            self.set_peer_pods_config(self.deployment.configmap_overrides)

    def adaptor_error(self, node: str) -> str | None:
        return self._cluster.adaptor_error(node)

    def use_webhook_configuration(self, path: Path) -> None:
        self._cluster.webhooks = load_webhook_configuration(
            read_text_bounded(path, what="webhook configuration", flag="--webhook-config"), source=str(path)
        )

    def make_webhook_unreachable(self) -> None:
        self._caller.reachable = False

    def set_webhook_env(self, name: str, value: str) -> None:
        self._caller.settings = self._cluster.settings = self._caller.settings.with_env(name, value)

    def use_sizing_annotations(self, enabled: bool) -> None:
        self._caller.settings = self._cluster.settings = replace(self._caller.settings, annotations=enabled)

    def add_sidecar_webhook(self, container: Mapping[str, Any]) -> None:
        webhook = sidecar_webhook()
        self._recorder.local[webhook.name] = SidecarInjector(container)
        self._cluster.webhooks = [*self._cluster.webhooks, webhook]

    def webhook_requests(self, namespace: str, name: str) -> list[str]:
        return [call.operation for call in self._recorder.calls_for(namespace, name)]

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        if not self._cluster.has_namespace(name):
            self._cluster.create_namespace(name, dict(labels or {}))

    def allow_peer_pods_only_in(self, namespaces: list[str]) -> None:
        self._cluster.apply_admission_policy(allowed_namespaces=list(namespaces))

    def set_peer_pods_config(self, data: Mapping[str, str]) -> None:
        self.deployment.set_configmap(data)
        self._cluster.apply_configmap(self.deployment.configmap())

    def set_peer_pods_secret(self, data: Mapping[str, str]) -> None:
        self.deployment.set_secret(data)
        self._cluster.apply_secret(self.deployment.secret())

    def adaptor_environment(self) -> dict[str, str]:
        """What the adaptor's process environment holds (see :class:`PeerPodsDeployment`)."""
        return self.deployment.adaptor_environment()

    def add_node(self, name: str) -> None:
        self._cluster.add_node(name)

    def restart_adaptors(self) -> None:
        self._cluster.restart_adaptors()

    # --- actions and observations --------------------------------------------------------
    def create_pod(self, manifest: Mapping[str, Any], *, operation: str = "CREATE") -> PodOutcome:
        metadata = manifest.get("metadata") or {}
        key = (str(metadata.get("namespace", "default")), str(metadata.get("name", "")))
        try:
            state = self._cluster.create_pod(dict(manifest), operation=operation)
        except AdmissionDenied as denied:
            outcome = PodOutcome(admitted=False, pod=None, denial=str(denied), code=self._code(key, denied))
            if operation == "CREATE":
                self._refused[key] = outcome
            return outcome
        return _outcome(state)

    def _code(self, key: tuple[str, str], denied: AdmissionDenied) -> int:
        """kube-apiserver's status: a webhook's refusal carries the webhook's own code."""
        calls = self._recorder.calls_for(*key, others=True)
        if calls and calls[-1].allowed is False and calls[-1].code is not None:
            return calls[-1].code
        return denied.code

    def delete_pod(self, namespace: str, name: str) -> None:
        self._cluster.delete_pod(namespace, name)

    def get_pod(self, namespace: str, name: str) -> PodOutcome:
        if (namespace, name) in self._refused:
            return self._refused[(namespace, name)]
        return _outcome(self._cluster.get_pod(namespace, name))

    def node_capacity(self, node: str) -> dict[str, str]:
        return self._cluster.node_capacity(node)

    def node_allocated(self, node: str) -> dict[str, str]:
        return self._cluster.node_allocated(node)

    def _vm(self, namespace: str, name: str) -> str:
        state = self._cluster.get_pod(namespace, name)
        if state.vm is None:
            raise AssertionError(f"pod {namespace}/{name} has no pod VM ({state.phase}: {state.reason})")
        return state.vm

    def pod_vm(self, namespace: str, name: str) -> PodVMFacts:
        return cast(PodVMFacts, self._provider.describe(self._vm(namespace, name)))

    def guest_report(self, namespace: str, name: str) -> GuestReport:
        return self._provider.guest_report(self._vm(namespace, name))

    def pod_vms(self) -> list[str]:
        return self._cluster.pod_vms()

    def leftovers(self) -> list[str]:
        """The in-memory provider holds nothing but its pod VMs."""
        return [f"domain {name}" for name in self.pod_vms()]

    def close(self) -> None:
        self._cluster.close()


def _outcome(state: PodState) -> PodOutcome:
    return PodOutcome(
        admitted=True, pod=state.pod, phase=state.phase, node=state.node, reason=state.reason, vm=state.vm
    )
