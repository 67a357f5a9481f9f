"""The scheduling queue of the in-process cluster (kube-scheduler's SchedulingQueue): pending
pods, bound in creation order.

A pod the scheduler cannot place waits here with its request and the scheduler's reason
(kube-scheduler's FitError and preemption message); it is tried again, oldest first,
whenever nodes or resources change. A bound pod is handed to its node's kubelet
(:meth:`sim.kube.nodepool.NodePool.start_pod`), which starts its sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sim.kube.nodepool import NodePool
from sim.kube.podstate import PodState
from sim.kube.scheduler import Scheduler, effective_request
from sim.peerpods.kata import KataRuntime

__all__ = ["PodState", "SchedulingQueue"]


def _with_preemption(reason: str | None, nodes: int) -> str | None:
    """The pod's Unschedulable message as kube-scheduler writes it: the filters' FitError,
    then what the DefaultPreemption post-filter found. Every pod here has the same
    priority, so no node has a victim to evict (message measured on kube-scheduler v1.37.2)."""
    if not reason or not reason.startswith("0/"):
        return reason
    victims = f"{nodes} No preemption victims found for incoming pod"
    return f"{reason} preemption: 0/{nodes} nodes are available: {victims}."


class SchedulingQueue:
    """Pending pods (insertion order = retry order) and how a pod gets bound."""

    def __init__(
        self,
        scheduler: Scheduler,
        nodes: NodePool,
        pods: Mapping[tuple[str, str], PodState],
        kata: Callable[[], KataRuntime],
        is_peer_pod: Callable[[Mapping[str, Any]], bool],
    ) -> None:
        self.scheduler = scheduler
        self.nodes = nodes
        self.pods = pods
        self.kata = kata
        self.is_peer_pod = is_peer_pod
        self._waiting: dict[tuple[str, str], dict[str, int]] = {}

    def discard(self, key: tuple[str, str]) -> None:
        self._waiting.pop(key, None)

    def clear(self) -> None:
        self._waiting.clear()

    def schedule(
        self, key: tuple[str, str], state: PodState, request: Mapping[str, int] | None = None
    ) -> bool:
        """Try to bind a pending pod; its node's kubelet then starts it."""
        if request is None:
            request = self._waiting.get(key) or effective_request(state.pod)
        wanted = (state.pod.get("spec") or {}).get("nodeName")
        if wanted and state.node is None:
            return self._admit_on_node(key, state, str(wanted), request)
        placement = self.scheduler.schedule(key, request)
        if placement.node is None:
            state.reason = _with_preemption(placement.reason, len(self.scheduler.node_names()))
            self._waiting[key] = dict(request)
            return False
        self._waiting.pop(key, None)
        return self._started(key, state, placement.node)

    def _started(self, key: tuple[str, str], state: PodState, node: str) -> bool:
        """The pod is bound: record it, and hand it to the node's kubelet to start."""
        state.node = node
        state.pod.setdefault("spec", {})["nodeName"] = node
        state.reason = None
        self.nodes.start_pod(node, key, state, self.kata(), peer_pod=self.is_peer_pod(state.pod))
        return True

    def _admit_on_node(
        self, key: tuple[str, str], state: PodState, node: str, request: Mapping[str, int]
    ) -> bool:
        """A pod that names its node skips the scheduler; that node's kubelet admits or fails it."""
        if not self.scheduler.has_node(node):
            state.reason = f'node "{node}" not found: the pod waits for it'
            self._waiting[key] = dict(request)
            return False
        self._waiting.pop(key, None)
        placement = self.scheduler.bind_to(key, node, request)
        if placement.node is None:
            state.phase, state.reason = "Failed", placement.reason
            reason = (placement.reason or "").split(":", 1)[0]
            state.pod["status"] = {"phase": "Failed", "reason": reason, "message": placement.reason}
            return True
        return self._started(key, state, node)

    def retry(self) -> None:
        """Give every pending pod another chance, oldest first, as the scheduling queue does.

        Until some pod binds, nothing changes, so a request that just failed fails again
        with the same reason: those are answered from a memo instead of the scheduler.
        """
        failed: dict[frozenset[tuple[str, int]], str | None] = {}
        for key, request in list(self._waiting.items()):
            state = self.pods.get(key)
            if state is None:
                self._waiting.pop(key, None)
                continue
            signature = frozenset(request.items())
            if signature in failed:
                state.reason = failed[signature]
                continue
            if self.schedule(key, state, request):
                failed.clear()
            else:
                failed[signature] = state.reason
