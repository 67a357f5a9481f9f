"""The worker nodes of the in-process cluster: each one's kubelet and cloud-api-adaptor.

Each node is a Node object whose allocatable amounts the scheduler knows, and one adaptor
that started with the adaptor's environment (peer-pods-secret, then peer-pods-cm) and
patched its extended resource into the node (:data:`sim.peerpods.adaptor.ADVERTISED_RESOURCE`). An
adaptor that exits at start-up advertises nothing; restarting re-reads the configuration.
The node's kubelet starts a pod bound to it (:meth:`NodePool.start_pod`): a peer pod's
sandbox goes through the Kata runtime to the adaptor, which creates its pod VM.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sim.errors import ConformanceInputError
from sim.kube.podstate import PodState
from sim.kube.scheduler import Scheduler, format_amount, node_amounts
from sim.peerpods.adaptor import AdaptorConfig, AdaptorStartError, CloudApiAdaptor, NodeAdaptor, PodVMError
from sim.peerpods.kata import KataRuntime, SandboxError, sandbox_failed
from sim.peerpods.providers import Provider

__all__ = ["AdaptorFactory", "NodeError", "NodePool"]

#: Makes a node's adaptor from the node's name and the pod VM provider.
AdaptorFactory = Callable[[str, Provider], NodeAdaptor]


class NodeError(ConformanceInputError):
    """A node that does not exist, or already does."""


@dataclass
class _Node:
    obj: dict[str, Any]
    adaptor: NodeAdaptor
    base_allocatable: dict[str, str]


def _start(adaptor: NodeAdaptor, data: Mapping[str, str]) -> int | None:
    """Start (or restart) an adaptor; one that exits at start-up advertises nothing."""
    try:
        return adaptor.start(data)
    except AdaptorStartError:
        return None


class NodePool:
    """The nodes, their adaptors, and what each node advertises to ``scheduler``."""

    def __init__(
        self,
        provider: Provider,
        scheduler: Scheduler,
        error: type[Exception] = NodeError,
        adaptor_factory: AdaptorFactory = CloudApiAdaptor,
    ) -> None:
        self.provider = provider
        #: Makes each node's adaptor: the reference in process, or another (the ``adaptor`` target).
        self.adaptor_factory = adaptor_factory
        self.scheduler = scheduler
        self._error = error
        self._nodes: dict[str, _Node] = {}

    def add(
        self,
        name: str,
        adaptor_env: Mapping[str, str],
        *,
        cpu: str = "8",
        memory: str = "32Gi",
        pods: int = 110,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Add a worker node; its adaptor starts at once with ``adaptor_env``."""
        if name in self._nodes:
            raise self._error(f'nodes "{name}" already exists')
        base = {"cpu": str(cpu), "memory": str(memory), "pods": str(pods), **dict(extra or {})}
        amounts = node_amounts(base, where=f"node {name}: capacity")
        adaptor = self.adaptor_factory(name, self.provider)
        advertised = _start(adaptor, adaptor_env)  # a bad config map fails before the node exists
        obj = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"capacity": dict(base), "allocatable": dict(base)},
        }
        self._nodes[name] = _Node(obj, adaptor, base)
        self.scheduler.add_node(name, amounts)
        self.advertise(name, advertised)
        return copy.deepcopy(obj)

    def advertise(self, name: str, advertised: int | None) -> None:
        """Patch the node's extended resource (capacity and allocatable) as CAA does."""
        node = self._nodes[name]
        status = node.obj["status"]
        for part in ("capacity", "allocatable"):
            status[part] = {k: v for k, v in status[part].items() if k != node.adaptor.resource}
            if advertised is not None:
                status[part][node.adaptor.resource] = str(advertised)
        self.scheduler.set_allocatable(name, node_amounts(status["allocatable"], where=f"node {name}"))

    def start_adaptors(self, adaptor_env: Mapping[str, str]) -> None:
        """Start every adaptor that has not started (nodes start theirs when added)."""
        for name, node in self._nodes.items():
            if node.adaptor.config is None:
                self.advertise(name, _start(node.adaptor, adaptor_env))

    def restart_adaptors(self, adaptor_env: Mapping[str, str]) -> None:
        """Restart every adaptor: each re-reads its environment and re-patches its node.

        The configuration is checked once before any adaptor restarts, so a bad value leaves
        every node as it was.
        """
        AdaptorConfig.from_configmap(adaptor_env)
        for name, node in self._nodes.items():
            self.advertise(name, _start(node.adaptor, adaptor_env))

    def start_pod(
        self, node: str, key: tuple[str, str], state: PodState, kata: KataRuntime, *, peer_pod: bool
    ) -> None:
        """The node's kubelet starts a pod bound to it (``key``): a peer pod's sandbox goes
        through ``kata`` to the node's adaptor, which creates its pod VM."""
        if peer_pod:
            try:
                request = kata.sandbox_request(state.pod)
                try:
                    state.vm = self.adaptor(node).create_pod_vm(request)
                except PodVMError as exc:  # the shim's CreateVM failed: the sandbox did not start
                    raise sandbox_failed(state.pod, str(exc)) from None
            except SandboxError as exc:
                # kubelet retries the sandbox: the pod stays Pending on its node, holding its
                # unit, and never runs (kubelet's FailedCreatePodSandBox event).
                state.phase, state.reason = "Pending", str(exc)
                state.pod["status"] = {"phase": "Pending", "reason": "ContainerCreating", "message": str(exc)}
                return
        state.phase = "Running"
        state.pod["status"] = {"phase": "Running"}

    def adaptor(self, name: str) -> NodeAdaptor:
        return self._node(name).adaptor

    def node(self, name: str) -> dict[str, Any]:
        return copy.deepcopy(self._node(name).obj)

    def adaptor_error(self, name: str) -> str | None:
        """Why the node's cloud-api-adaptor is not running (its exit message), or None."""
        return self._node(name).adaptor.start_error

    def names(self) -> list[str]:
        return list(self._nodes)

    def _node(self, name: str) -> _Node:
        try:
            return self._nodes[name]
        except KeyError:
            raise self._error(f'nodes "{name}" not found') from None

    def capacity(self, node: str) -> dict[str, str]:
        """The node's ``status.capacity`` as strings."""
        return dict(self._node(node).obj["status"]["capacity"])

    def allocatable(self, node: str) -> dict[str, str]:
        return dict(self._node(node).obj["status"]["allocatable"])

    def allocated(self, node: str) -> dict[str, str]:
        """What the pods bound to the node request, per resource, as quantity strings."""
        self._node(node)
        return {r: format_amount(r, a) for r, a in sorted(self.scheduler.allocated(node).items())}
