"""The one interface every system under test is driven through.

Steps speak only to an :class:`Environment`; a :class:`Target` builds one per scenario
(setup), and closes it afterwards (teardown), as kubernetes-sigs/e2e-framework keeps
setup, assessment and teardown apart. Targets never assert: they report what the system
did, in the plain objects below, and the Then-steps judge it.

A target that cannot answer a question says so through its ``capabilities``; scenarios
tagged ``@needs-<capability>`` are then reported *not applicable* on it, never passed.
An Environment method the target cannot serve raises :class:`NotApplicable`, which the
suite also reports as not applicable (a scenario whose tags under-declare its needs is
still never counted as passed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.lpar.prerequisites import LparCheck as LparCheck  # a fact the interface returns

#: Capability names a scenario can require with a ``@needs-<name>`` tag.
CAPABILITIES: dict[str, str] = {
    "mutation": "pods are sent through the mutating webhook and the admitted pod can be read back",
    "webhook-settings": "the webhook's env (TARGET_RUNTIMECLASS, POD_VM_EXTENDED_RESOURCE) can be set",
    "cluster": "nodes, the scheduler and the cloud-api-adaptor's node capacity are observable",
    "podvm": "pod VMs are created for scheduled peer pods and what they received can be read",
    "guest": "pod VMs really boot and their own agent reports what it did",
    "lpar-host": "the LPAR (KVM host) the pod VMs run on can be inspected",
}


class NotApplicable(Exception):
    """The target cannot answer this question; the scenario is not applicable, not failed."""


@dataclass(frozen=True)
class TargetOptions:
    """Everything a user can say about the system under test on the command line."""

    libvirt_uri: str | None = None
    webhook_url: str | None = None
    webhook_ca: Path | None = None
    webhook_config: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass
class PodOutcome:
    """What became of one pod: admission, then (where observable) scheduling and its VM."""

    admitted: bool
    pod: dict[str, Any] | None
    denial: str | None = None
    phase: str | None = None
    node: str | None = None
    reason: str | None = None
    vm: str | None = None
    code: int | None = None  # the HTTP status of a refusal, as kube-apiserver answers it


class Environment(ABC):
    """One scenario's world on a target: namespaces, configuration, nodes and pods."""

    # --- configuration (setup) -------------------------------------------------
    @abstractmethod
    def use_webhook_profile(self, profile: str, *, failure_policy: str | None = None) -> None:
        """Select the MutatingWebhookConfiguration profile (``caa-chart``, ``openshift``),
        optionally overriding its failurePolicy (``Fail``, ``Ignore``)."""

    @abstractmethod
    def make_webhook_unreachable(self) -> None:
        """From now on, calls to the webhook fail as if its endpoint could not be reached."""

    @abstractmethod
    def use_webhook_configuration(self, path: Path) -> None:
        """Use a MutatingWebhookConfiguration read from a YAML file."""

    @abstractmethod
    def set_webhook_env(self, name: str, value: str) -> None:
        """Set an environment variable of the webhook (TARGET_RUNTIMECLASS, POD_VM_EXTENDED_RESOURCE)."""

    @abstractmethod
    def use_sizing_annotations(self, enabled: bool) -> None:
        """Switch CAA's sizing annotations on (upstream) or off (the document's profile)."""

    @abstractmethod
    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Create a namespace (it carries ``kubernetes.io/metadata.name``)."""

    @abstractmethod
    def allow_peer_pods_only_in(self, namespaces: list[str]) -> None:
        """Install the doc's recommended policy: peer pods only in these namespaces."""

    @abstractmethod
    def set_peer_pods_config(self, data: Mapping[str, str]) -> None:
        """Apply ConfigMap ``peer-pods-cm`` with these keys (merged over the defaults)."""

    @abstractmethod
    def add_node(self, name: str) -> None:
        """Add a worker node; its cloud-api-adaptor starts with the current peer-pods-cm."""

    @abstractmethod
    def restart_adaptors(self) -> None:
        """Restart every cloud-api-adaptor so it re-reads peer-pods-cm."""

    # --- actions and observations (assessment) ---------------------------------
    @abstractmethod
    def create_pod(self, manifest: Mapping[str, Any], *, operation: str = "CREATE") -> PodOutcome:
        """Submit a pod as a user would; returns what the system made of it."""

    @abstractmethod
    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod; its pod VM and its extended-resource unit are released."""

    @abstractmethod
    def get_pod(self, namespace: str, name: str) -> PodOutcome:
        """The pod's current state."""

    @abstractmethod
    def node_capacity(self, node: str) -> dict[str, str]:
        """The node's ``status.capacity`` (as the adaptor patched it)."""

    @abstractmethod
    def node_allocated(self, node: str) -> dict[str, str]:
        """Sum of the requests of the pods bound to the node."""

    @abstractmethod
    def pod_vm(self, namespace: str, name: str) -> dict[str, Any]:
        """Facts about the pod's VM: at least ``name``, ``vcpus``, ``memory_mib`` and ``user_data``
        (the cloud-config the VM was given); providers add their own (disks, console, ...)."""

    @abstractmethod
    def guest_report(self, namespace: str, name: str) -> dict[str, Any]:
        """What the pod VM did with its user data (sim.podvm.GuestReport as a dict)."""

    @abstractmethod
    def pod_vms(self) -> list[str]:
        """Names of every pod VM that currently exists."""

    @abstractmethod
    def lpar_checks(self, description: Path | None) -> list[LparCheck]:
        """Evaluate the LPAR prerequisites on a described LPAR, or on the target's own host (None)."""

    # --- the webhook's registration and what it received ---------------------------------
    def use_deployed_webhook_configuration(self, profile: str) -> None:
        """Use the MutatingWebhookConfiguration deployed for ``profile``; not applicable when
        the target cannot say what is deployed, or what is deployed is of another profile."""
        self.use_webhook_profile(profile)

    def add_sidecar_webhook(self, container: Mapping[str, Any]) -> None:
        """Register another mutating webhook after the current ones; it adds ``container``."""
        raise NotApplicable("this target cannot register another webhook")

    def webhook_requests(self, namespace: str, name: str) -> list[str]:
        """The operations of the AdmissionReviews the webhook under test received for a pod."""
        raise NotApplicable("this target cannot tell what the webhook received")

    def adaptor_error(self, node: str) -> str | None:
        """Why the node's cloud-api-adaptor is not running (what it printed when it exited), or None."""
        raise NotApplicable("this target cannot observe the cloud-api-adaptor's process")

    def set_peer_pods_secret(self, data: Mapping[str, str]) -> None:
        """Apply Secret ``peer-pods-secret`` with these keys (merged over the profile's defaults)."""
        raise NotApplicable("this target runs no cloud-api-adaptor that reads peer-pods-secret")

    def use_deployment_profile(self, profile: str) -> None:
        """Deploy peer pods as ``profile`` does (``caa-chart``, ``openshift``): its webhook
        registration and, where the target runs one, its Kata runtime configuration."""
        self.use_webhook_profile(profile)

    # --- fault injection (only targets with a pod VM provider of their own offer it) ------
    def inject_libvirt_fault(self, step: str) -> None:
        """Make the pod VM provider's libvirt fail at one creation step."""
        raise NotApplicable("this target cannot inject libvirt faults")

    def silence_guests(self, timeout: float) -> None:
        """Boot pod VMs whose guests never report, and wait ``timeout`` seconds for them."""
        raise NotApplicable("this target boots no guests it could silence")

    @abstractmethod
    def close(self) -> None:
        """Teardown: delete everything this environment created."""


class Target(ABC):
    """A system under test. Built once per run; opens one Environment per scenario."""

    name: str = "abstract"
    capabilities: frozenset[str] = frozenset()

    @classmethod
    @abstractmethod
    def from_options(cls, options: TargetOptions) -> Target:
        """Build the target from the user's options; raise ConformanceInputError on bad ones."""

    @abstractmethod
    def identity(self) -> dict[str, str]:
        """What the certification report names as the system under test."""

    @abstractmethod
    def open_environment(self) -> Environment:
        """Setup for one scenario."""

    def close(self) -> None:  # noqa: B027 - most targets hold nothing for the whole run
        """Release whatever the target holds for the whole run."""

    def why_not(self, capability: str) -> str:
        """The reason a scenario needing ``capability`` is not applicable here."""
        meaning = CAPABILITIES.get(capability, capability)
        return f"not applicable on target {self.name!r}: needs {capability} ({meaning})"
