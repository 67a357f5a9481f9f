"""The interfaces every system under test is driven through, one per capability.

Steps speak only to an environment; a :class:`Target` builds one per scenario (setup), and
closes it afterwards (teardown), as kubernetes-sigs/e2e-framework keeps setup, assessment
and teardown apart. Targets never assert: they report what the system did, in the plain
objects below, and the Then-steps judge it.

What an environment can do is split by capability into protocols: every environment is a
:class:`Environment` (pods through the mutating webhook); :class:`Nodes`, :class:`PodVMs`,
:class:`Guests`, :class:`LparInspection`, ... are what some targets add. A target's
capabilities are computed once per run (:attr:`Target.capabilities`): the protocols its
environment class implements, or fewer where the run cannot offer one (a simulated LPAR
boots no guests). A scenario's needs come from its ``@needs-<capability>`` tags, checked
against them before any step runs: not applicable, never passed. At run time
:func:`need` is the one path: a step asks for the interface it uses and gets
:class:`Lacking` (a :class:`NotApplicable`) when the environment does not implement it, so
a scenario whose tags under-declare its needs is not applicable too. A method may still raise
NotApplicable for a reason only known at run time (the webhook as deployed on a given
cluster), with that reason.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypedDict, TypeVar, cast, runtime_checkable

from sim.errors import ConformanceInputError
from sim.lpar.prerequisites import LparCheck as LparCheck  # a fact the interface returns
from sim.peerpods.podvm import GuestReport

#: Capability names a scenario can require with a ``@needs-<name>`` tag.
CAPABILITIES: dict[str, str] = {
    "mutation": "pods are sent through the mutating webhook and the admitted pod can be read back",
    "webhook-settings": "the webhook's env (TARGET_RUNTIMECLASS, POD_VM_EXTENDED_RESOURCE) can be set",
    "cluster": "nodes, the scheduler and the cloud-api-adaptor's node capacity are observable",
    "podvm": "pod VMs are created for scheduled peer pods and what they received can be read",
    "guest": "pod VMs really boot and their own agent reports what it did",
    "lpar-host": "the LPAR (KVM host) the pod VMs run on can be inspected",
    "podvm-network": "pod VMs boot their image from the boot volume and are reached on the address their "
    "network leased (an adaptor's pod VMs in the run's own LPAR; the lpar target's boot their kernel on the "
    "host's network, which the suite does not enter)",
}


class NotApplicable(Exception):
    """The target cannot answer this question; the scenario is not applicable, not failed."""


class Lacking(NotApplicable):
    """The environment does not implement the interface a step needs (see :func:`need`)."""

    def __init__(self, capability: str) -> None:
        self.capability = capability
        super().__init__(f"needs {capability} ({INTERFACE_MEANINGS[capability]})")


@dataclass(frozen=True)
class TargetOptions:
    """Everything a user can say about the system under test on the command line."""

    libvirt_uri: str | None = None
    webhook_url: str | None = None
    webhook_ca: Path | None = None
    webhook_config: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    def refuse(self, target: str, *names: str) -> None:
        """ConformanceInputError naming every one of these options the user gave to ``target``."""
        given = [name for name in names if getattr(self, name)]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ConformanceInputError(f"the {target} target takes no {flags}")


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


class _PodVMRequired(TypedDict):
    name: str
    vcpus: int
    memory_mib: int
    user_data: str


class PodVMFacts(_PodVMRequired, total=False):
    """Facts about one pod VM: what every provider tells, then what the libvirt one adds."""

    provider: str
    arch: str
    machine: str
    host_arch: str
    active: bool
    launch_security: str | None
    disks: list[dict[str, Any]]
    volumes: list[str]
    root_capacity: int | None
    backing_store: str | None
    pool: str
    console: str
    network: str
    nic_model: str
    rng: str
    memballoon: str
    memballoon_iommu: str
    kernel: str | None


# --- the interfaces, one per capability --------------------------------------------------------


@runtime_checkable
class Environment(Protocol):
    """Every target: one scenario's namespaces and pods, sent through the mutating webhook
    as kube-apiserver would send them (capability ``mutation``)."""

    def use_webhook_profile(self, profile: str, *, failure_policy: str | None = None) -> None:
        """Select the MutatingWebhookConfiguration profile (``caa-chart``, ``openshift``),
        optionally overriding its failurePolicy (``Fail``, ``Ignore``)."""

    def use_deployment_profile(self, profile: str) -> None:
        """Deploy peer pods as ``profile`` does (``caa-chart``, ``openshift``): its webhook
        registration and, where the target runs one, its Kata runtime configuration."""

    def use_deployed_webhook_configuration(self, profile: str) -> None:
        """Use the MutatingWebhookConfiguration deployed for ``profile``; not applicable when
        the target cannot say what is deployed, or what is deployed is of another profile."""

    def use_webhook_configuration(self, path: Path) -> None:
        """Use a MutatingWebhookConfiguration read from a YAML file."""

    def make_webhook_unreachable(self) -> None:
        """From now on, calls to the webhook fail as if its endpoint could not be reached."""

    def use_sizing_annotations(self, enabled: bool) -> None:
        """Switch CAA's sizing annotations on (upstream) or off (the document's profile)."""

    def create_namespace(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Create a namespace (it carries ``kubernetes.io/metadata.name``)."""

    def allow_peer_pods_only_in(self, namespaces: list[str]) -> None:
        """Install the doc's recommended policy: peer pods only in these namespaces."""

    def create_pod(self, manifest: Mapping[str, Any], *, operation: str = "CREATE") -> PodOutcome:
        """Submit a pod as a user would; returns what the system made of it."""

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete a pod; its pod VM and its extended-resource unit are released."""

    def get_pod(self, namespace: str, name: str) -> PodOutcome:
        """The pod's current state."""

    def close(self) -> None:
        """Teardown: delete everything this environment created."""


@runtime_checkable
class WebhookEnv(Protocol):
    """The webhook's own environment can be set (capability ``webhook-settings``)."""

    def set_webhook_env(self, name: str, value: str) -> None:
        """Set an environment variable of the webhook (TARGET_RUNTIMECLASS, POD_VM_EXTENDED_RESOURCE)."""


@runtime_checkable
class Nodes(Protocol):
    """Worker nodes, the scheduler and the cloud-api-adaptors' configuration (``cluster``)."""

    def set_peer_pods_config(self, data: Mapping[str, str]) -> None:
        """Apply ConfigMap ``peer-pods-cm`` with these keys (merged over the defaults)."""

    def add_node(self, name: str) -> None:
        """Add a worker node; its cloud-api-adaptor starts with the current peer-pods-cm."""

    def restart_adaptors(self) -> None:
        """Restart every cloud-api-adaptor so it re-reads peer-pods-cm."""

    def node_capacity(self, node: str) -> dict[str, str]:
        """The node's ``status.capacity`` (as the adaptor patched it)."""

    def node_allocated(self, node: str) -> dict[str, str]:
        """Sum of the requests of the pods bound to the node."""


@runtime_checkable
class PodVMs(Protocol):
    """Pod VMs are created for scheduled peer pods and can be read (``podvm``)."""

    def pod_vm(self, namespace: str, name: str) -> PodVMFacts:
        """Facts about the pod's VM (the cloud-config it was given, its size, its disks...)."""

    def guest_report(self, namespace: str, name: str) -> GuestReport:
        """What the pod VM did with its user data (a real guest's agent, or the reference logic)."""

    def pod_vms(self) -> list[str]:
        """Names of every pod VM that currently exists."""

    def leftovers(self) -> list[str]:
        """Every pod VM resource the provider still holds (``domain X``, ``volume Y``)."""


@runtime_checkable
class Guests(Protocol):
    """Pod VMs really boot and their own agent reports (``guest``)."""

    def silence_guests(self, timeout: float) -> None:
        """Boot pod VMs whose guests never report, and wait ``timeout`` seconds for them."""


@runtime_checkable
class LparInspection(Protocol):
    """The LPAR (KVM host) the pod VMs run on can be inspected (``lpar-host``)."""

    def lpar_checks(self, description: Path | None) -> list[LparCheck]:
        """Evaluate the LPAR prerequisites on a described LPAR, or on the target's own host (None)."""


@runtime_checkable
class WebhookCalls(Protocol):
    """The suite plays kube-apiserver's side of the webhook calls: it can register another
    webhook and tell what the webhook under test received."""

    def add_sidecar_webhook(self, container: Mapping[str, Any]) -> None:
        """Register another mutating webhook after the current ones; it adds ``container``."""

    def webhook_requests(self, namespace: str, name: str) -> list[str]:
        """The operations of the AdmissionReviews the webhook under test received for a pod."""


@runtime_checkable
class AdaptorProcess(Protocol):
    """The cloud-api-adaptor runs as a process whose start can be observed and configured."""

    def adaptor_error(self, node: str) -> str | None:
        """Why the node's cloud-api-adaptor is not running (what it printed when it exited), or None."""

    def set_peer_pods_secret(self, data: Mapping[str, str]) -> None:
        """Apply Secret ``peer-pods-secret`` with these keys (merged over the profile's defaults)."""


@dataclass(frozen=True)
class ForwarderProbe:
    """The pod VM asked once over its own network: the address its network leased to it (None:
    no lease), the line its agent-protocol-forwarder port answered once it accepted (empty when
    it said nothing; None: nothing accepted), and why nothing did."""

    address: str | None
    answer: str | None
    problem: str | None = None


@runtime_checkable
class PodVMNetwork(Protocol):
    """The pod VMs boot their image, lease an address and can be reached on it (``podvm-network``)."""

    def probe_forwarder(self, namespace: str, name: str) -> ForwarderProbe:
        """Now, without waiting: the pod's VM's lease, and a connection to its port 15150 made
        from the LPAR's network."""


@runtime_checkable
class LibvirtFaults(Protocol):
    """The pod VM provider's libvirt can be made to fail (fault injection)."""

    def inject_libvirt_fault(self, step: str) -> None:
        """Make the pod VM provider's libvirt fail at one creation step."""


#: Capability -> the protocol that provides it. Those in :data:`CAPABILITIES` are ``@needs-<name>`` tags.
INTERFACES: dict[str, type] = {
    "mutation": Environment,
    "webhook-settings": WebhookEnv,
    "cluster": Nodes,
    "podvm": PodVMs,
    "guest": Guests,
    "lpar-host": LparInspection,
    "podvm-network": PodVMNetwork,
    "webhook-calls": WebhookCalls,
    "adaptor-process": AdaptorProcess,
    "libvirt-faults": LibvirtFaults,
}
INTERFACE_MEANINGS: dict[str, str] = {
    **CAPABILITIES,
    "webhook-calls": "the suite plays kube-apiserver: it registers another webhook and sees what was sent",
    "adaptor-process": "the cloud-api-adaptor's process and its peer-pods-secret can be observed and set",
    "libvirt-faults": "the pod VM provider's libvirt can be made to fail at one creation step",
}
_CAPABILITY_OF: dict[type, str] = {protocol: name for name, protocol in INTERFACES.items()}

P = TypeVar("P")


def need(env: object, interface: Callable[..., P]) -> P:
    """``env`` as ``interface`` (one of the protocols above); :class:`Lacking` (not applicable)
    when it does not implement it. (``Callable``: mypy takes no protocol for ``type[P]``.)"""
    protocol = cast(type, interface)
    if not isinstance(env, protocol):
        raise Lacking(_CAPABILITY_OF[protocol])
    return cast(P, env)


def provided_by(environment: type) -> frozenset[str]:
    """The capabilities an environment class implements (every method of the protocol)."""
    return frozenset(
        name
        for name, protocol in INTERFACES.items()
        if name in CAPABILITIES and issubclass(environment, protocol)
    )


class Target(ABC):
    """A system under test. Built once per run; opens one environment per scenario."""

    name: str = "abstract"
    #: The class of the environments this target opens: its capabilities are derived from it.
    environment_class: ClassVar[type] = object
    #: Where the system under test is only part of what the environment runs (the rest being the
    #: suite's reference): a scenario reaches it only if it needs one of these capabilities, and
    #: is not applicable otherwise. None: every scenario reaches the system under test.
    reaches: ClassVar[frozenset[str] | None] = None
    #: The facts of :meth:`identity` that belong to one LPAR (its libvirt, its machine): a run over
    #: several LPARs reports them per LPAR, as each LPAR's workers saw them. None by default.
    per_lpar_facts: ClassVar[frozenset[str]] = frozenset()

    @property
    def capabilities(self) -> frozenset[str]:
        """What scenarios this target can answer in this run, decided once: by default every
        capability its environment class implements; a target that cannot offer one of them
        in this run (a simulated LPAR boots no guests) computes its own."""
        return provided_by(self.environment_class)

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

    def log_files(self) -> dict[str, Path]:
        """The logs this run's target wrote (a server's, a control plane's), by a name for the results
        bundle; read before :meth:`close`, which may remove them. None by default."""
        return {}

    def why_unreached(self) -> str:
        """The reason a scenario that needs none of :attr:`reaches` is not applicable here."""
        needs = " or ".join(f"@needs-{name}" for name in sorted(self.reaches or ()))
        return (
            f"not applicable on target {self.name!r}: the scenario does not reach the system under test "
            f"(it needs none of {needs}; the rest is the suite's reference here)"
        )

    def why_not(self, capability: str) -> str:
        """The reason a scenario needing ``capability`` is not applicable here."""
        meaning = CAPABILITIES.get(capability, capability)
        return f"not applicable on target {self.name!r}: needs {capability} ({meaning})"
