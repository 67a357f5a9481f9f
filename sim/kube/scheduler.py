"""Resource-fit scheduling, as kube-scheduler's NodeResourcesFit filter decides it.

The per-node limit of pod VMs is nothing but an extended resource that the scheduler
accounts for (doc 4.1.2), so this module is what makes a peer pod Running or Pending.

Semantics kept from Kubernetes:

* A pod's effective request, per resource, is ``max(sum of app containers, largest init
  container)`` plus ``spec.overhead``; restartable ("sidecar") init containers add to both
  terms as in ``resourcehelper.PodRequests``. CPU is counted in millicores rounded up, every
  other resource in whole units rounded up (``MilliValue``/``Value``).
* A node fits when, for every resource the pod requests (non-zero), allocatable minus what
  bound pods request covers it; every pod also takes one of the node's ``pods``. A resource
  the node does not advertise has allocatable 0, so it never fits.
* When no node fits, the reason reads as kube-scheduler's FitError:
  ``0/3 nodes are available: 3 Insufficient kata.peerpods.io/vm.`` - one "<count> <reason>"
  per failure reason, counting each node once per resource it lacks, sorted as strings.

Scoring differs on purpose: among fitting nodes the one with the most free units of the
pod's *primary* resource wins (its extended resource if it has one, else CPU, else pod
slots), ties to the node added first. That spreads peer pods the way LeastAllocated does
for identical nodes, and it can be answered from a heap.

Cost: each primary resource keeps a max-heap of (free, node) entries invalidated lazily
(an entry is stale when its amount no longer equals the node's), so placing a pod pops
O(1) amortised entries and a pod whose primary resource is exhausted everywhere is
answered from the heap's top. Each resource also keeps a sorted list of every node's free
amount, so "how many nodes lack X" - the FitError counts - is a bisection; those lists are
brought up to date lazily, only for the nodes that changed, when a pod cannot be placed,
so binding costs O(log n) and a run of pods that fit nowhere costs O(log n) each after one
catch-up. Quantity strings are parsed once and memoised.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from typing import Any

from sim.errors import ConformanceInputError
from sim.quantities import AMOUNT_CACHE, to_amount

__all__ = [
    "CPU",
    "MEMORY",
    "PODS",
    "Placement",
    "Scheduler",
    "SchedulerError",
    "effective_request",
    "format_amount",
    "node_amounts",
]

CPU = "cpu"
MEMORY = "memory"
PODS = "pods"
_NATIVE = frozenset({CPU, MEMORY, PODS, "ephemeral-storage"})
_MILLI = Decimal(1000)


class SchedulerError(ConformanceInputError):
    """A scheduling request that names something the scheduler does not know."""


def format_amount(resource: str, amount: int) -> str:
    """An integer amount back as a Kubernetes quantity string (``250m``, ``120Mi``, ``10``)."""
    if resource == CPU:
        return str(amount // 1000) if amount % 1000 == 0 else f"{amount}m"
    if resource == MEMORY or resource.startswith("hugepages-") or resource == "ephemeral-storage":
        for suffix, power in (("Gi", 30), ("Mi", 20), ("Ki", 10)):
            if amount and amount % (1 << power) == 0:
                return f"{amount >> power}{suffix}"
    return str(amount)


def _add(into: dict[str, int], resources: Mapping[str, int]) -> None:
    for name, amount in resources.items():
        into[name] = into.get(name, 0) + amount


def _parsed(values: object, where: Callable[[], str]) -> dict[str, int]:
    """A requests (or overhead) map in integer amounts; ``where`` is only built on an error."""
    if not values:
        return {}
    if not isinstance(values, Mapping):
        raise SchedulerError(f"{where()}: must be a mapping, got {values!r}")
    result = {}
    for name, value in values.items():
        amount = AMOUNT_CACHE.get((name, value)) if isinstance(value, str) else None
        result[name] = (
            amount if amount is not None else to_amount(str(name), value, where=f"{where()}.{name}")
        )
    return result


def _requests(container: Mapping[str, Any], where: Callable[[], str]) -> dict[str, int]:
    resources = container.get("resources")
    if not resources:
        return {}
    if not isinstance(resources, Mapping):
        raise SchedulerError(f"{where()}.resources: must be a mapping, got {resources!r}")
    return _parsed(resources.get("requests"), lambda: f"{where()}.resources.requests")


def _label(pod: Mapping[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"pod {meta.get('namespace', 'default')}/{meta.get('name', '<unnamed>')}"


def effective_request(pod: Mapping[str, Any]) -> dict[str, int]:
    """What the pod asks of a node, per resource (non-zero only), including one pod slot."""
    spec = pod.get("spec") or {}
    running: dict[str, int] = {}
    for index, container in enumerate(spec.get("containers") or ()):
        _add(running, _requests(container, partial(_where, pod, "containers", index, container)))
    init_peak: dict[str, int] = {}
    init_containers = spec.get("initContainers")
    if init_containers:
        sidecars: dict[str, int] = {}
        for index, container in enumerate(init_containers):
            own = _requests(container, partial(_where, pod, "initContainers", index, container))
            if container.get("restartPolicy") == "Always":
                _add(running, own)
                _add(sidecars, own)
                during = dict(sidecars)
            else:
                during = dict(sidecars)
                _add(during, own)
            for name, amount in during.items():
                init_peak[name] = max(init_peak.get(name, 0), amount)
        for name, amount in init_peak.items():
            running[name] = max(running.get(name, 0), amount)
    overhead = spec.get("overhead")
    if overhead:
        _add(running, _parsed(overhead, lambda: f"{_label(pod)}: spec.overhead"))
    result = {name: amount for name, amount in running.items() if amount > 0}
    result[PODS] = 1
    return result


def _where(pod: Mapping[str, Any], kind: str, index: int, container: Mapping[str, Any]) -> str:
    return f"{_label(pod)}: {kind}[{index}] ({container.get('name')})"


@dataclass(frozen=True)
class Placement:
    """The scheduler's answer: a node, or the FitError text."""

    node: str | None
    reason: str | None = None


@dataclass
class _Node:
    index: int
    name: str
    allocatable: dict[str, int]
    requested: dict[str, int] = field(default_factory=dict)

    def free(self, resource: str) -> int:
        return self.allocatable.get(resource, 0) - self.requested.get(resource, 0)


def _reason(resource: str) -> str:
    return "Too many pods" if resource == PODS else f"Insufficient {resource}"


def _primary(request: Mapping[str, int]) -> str:
    """The resource whose free amount ranks the nodes for this pod."""
    extended = sorted(name for name in request if name not in _NATIVE)
    if extended:
        return extended[0]
    return CPU if CPU in request else PODS


class Scheduler:
    """Nodes, their allocatable resources, and what the bound pods request of them."""

    #: Non-fitting candidates popped before asking the sorted lists whether anything can fit.
    PROBE = 16

    def __init__(self) -> None:
        self._nodes: list[_Node] = []
        self._by_name: dict[str, _Node] = {}
        self._free: dict[str, list[int]] = {}  # resource -> sorted free amounts of every node
        self._listed: dict[str, list[int]] = {}  # resource -> the amount of each node in _free
        self._dirty: set[int] = set()  # nodes whose amounts changed since _free was synced
        self._heaps: dict[str, list[tuple[int, int]]] = {}  # resource -> (-free, node index)
        self._bound: dict[Any, tuple[_Node, dict[str, int]]] = {}

    # ----------------------------------------------------------------- nodes
    def add_node(self, name: str, allocatable: Mapping[str, int]) -> None:
        """Register a node with its allocatable amounts (integer units, see :func:`to_amount`)."""
        if name in self._by_name:
            raise SchedulerError(f"node {name} already exists")
        node = _Node(len(self._nodes), name, dict(allocatable))
        self._nodes.append(node)
        self._by_name[name] = node
        for resource, amounts in self._free.items():
            self._listed[resource].append(node.free(resource))
            bisect.insort(amounts, node.free(resource))
        for resource, heap in self._heaps.items():
            heapq.heappush(heap, (-node.free(resource), node.index))

    def set_allocatable(self, name: str, allocatable: Mapping[str, int]) -> None:
        """Replace a node's allocatable amounts (the adaptor patched its status)."""
        node = self._node(name)
        changed = set(node.allocatable) | set(allocatable)
        before = {r: node.free(r) for r in changed}
        node.allocatable = dict(allocatable)
        for resource in changed:
            self._moved(node, resource, before[resource])

    def allocatable(self, name: str) -> dict[str, int]:
        return dict(self._node(name).allocatable)

    def allocated(self, name: str) -> dict[str, int]:
        """What the pods bound to the node request (non-zero entries)."""
        return {r: a for r, a in self._node(name).requested.items() if a}

    def has_node(self, name: str) -> bool:
        return name in self._by_name

    def node_names(self) -> list[str]:
        return [node.name for node in self._nodes]

    # ----------------------------------------------------------------- pods
    def schedule(self, key: Any, request: Mapping[str, int]) -> Placement:
        """Bind the pod ``key`` to the best fitting node, or explain why none fits."""
        if key in self._bound:
            raise SchedulerError(f"pod {key} is already bound to {self._bound[key][0].name}")
        if not self._nodes:
            return Placement(None, "no nodes available to schedule pods")
        node = self._best_fit(_primary(request), request)
        if node is None:
            return Placement(None, self._fit_error(self._shortfall(request)))
        self._bind(key, node, dict(request))
        return Placement(node.name)

    def bind_to(self, key: Any, name: str, request: Mapping[str, int]) -> Placement:
        """Bind to a named node without choosing, as the kubelet admits a pod with ``nodeName``.

        The kubelet refuses a pod its node cannot hold; the reason reads as the kubelet's
        (``OutOf<resource>``), naming the first resource that does not fit.
        """
        if key in self._bound:
            raise SchedulerError(f"pod {key} is already bound to {self._bound[key][0].name}")
        node = self._node(name)
        for resource, amount in sorted(request.items()):
            free = node.free(resource)
            if free < amount:
                used = node.requested.get(resource, 0)
                capacity = node.allocatable.get(resource, 0)
                return Placement(
                    None,
                    f"OutOf{resource}: Pod was rejected: Node didn't have enough resource: {resource}, "
                    f"requested: {amount}, used: {used}, capacity: {capacity}",
                )
        self._bind(key, node, dict(request))
        return Placement(node.name)

    def release(self, key: Any) -> str | None:
        """Forget a bound pod and give its resources back; returns the node it was on."""
        entry = self._bound.pop(key, None)
        if entry is None:
            return None
        node, request = entry
        for resource, amount in request.items():
            before = node.free(resource)
            node.requested[resource] -= amount
            self._moved(node, resource, before)
        return node.name

    def node_of(self, key: Any) -> str | None:
        entry = self._bound.get(key)
        return entry[0].name if entry else None

    # ----------------------------------------------------------------- internals
    def _node(self, name: str) -> _Node:
        try:
            return self._by_name[name]
        except KeyError:
            raise SchedulerError(f"no node named {name!r}") from None

    def _shortfall(self, request: Mapping[str, int]) -> dict[str, int]:
        """Per requested resource, how many nodes have less free than the pod asks."""
        self._sync()
        result = {}
        for resource, amount in request.items():
            if resource not in self._free:
                listed = [node.free(resource) for node in self._nodes]
                self._listed[resource] = listed
                self._free[resource] = sorted(listed)
            result[resource] = bisect.bisect_left(self._free[resource], amount)
        return result

    def _sync(self) -> None:
        """Bring the sorted lists up to date with the nodes that changed since the last query.

        Deferred so that binding costs no list work: a node changed many times is moved once,
        and the work is paid only when a pod cannot be placed at once.
        """
        for index in self._dirty:
            node = self._nodes[index]
            for resource, amounts in self._free.items():
                listed = self._listed[resource]
                old, new = listed[index], node.free(resource)
                if old != new:
                    del amounts[bisect.bisect_left(amounts, old)]
                    bisect.insort(amounts, new)
                    listed[index] = new
        self._dirty.clear()

    def _heap(self, resource: str) -> list[tuple[int, int]]:
        heap = self._heaps.get(resource)
        if heap is None or len(heap) > 4 * len(self._nodes) + 64:
            heap = [(-node.free(resource), node.index) for node in self._nodes]
            heapq.heapify(heap)
            self._heaps[resource] = heap
        return heap

    def _moved(self, node: _Node, resource: str, before: int) -> None:
        """Note a change of ``node``'s free amount: lists later, the heap entry now."""
        after = node.free(resource)
        if after == before:
            return
        self._dirty.add(node.index)
        heap = self._heaps.get(resource)
        if heap is not None:
            heapq.heappush(heap, (-after, node.index))

    @staticmethod
    def _fits(node: _Node, request: Mapping[str, int]) -> bool:
        allocatable, requested = node.allocatable, node.requested
        for resource, amount in request.items():
            if allocatable.get(resource, 0) - requested.get(resource, 0) < amount:
                return False
        return True

    def _best_fit(self, primary: str, request: Mapping[str, int]) -> _Node | None:
        """Pop heap entries, best first, until a node fits; put back the ones that did not.

        The heap answers "no node has enough of the primary resource" at its top. When the
        top candidates fit the primary resource but lack another one, the sorted lists are
        consulted after :attr:`PROBE` misses, so a pod that fits nowhere never walks every node.
        """
        heap = self._heap(primary)
        needed = request.get(primary, 0)
        passed: list[tuple[int, int]] = []
        found = None
        while heap:
            negative_free, index = heap[0]
            node = self._nodes[index]
            if -negative_free != node.free(primary):
                heapq.heappop(heap)  # stale: the node has changed since this entry was pushed
                continue
            if -negative_free < needed:
                break
            entry = heapq.heappop(heap)
            if self._fits(node, request):
                found = node  # not put back: binding pushes the node's new amount
                break
            passed.append(entry)
            if len(passed) == self.PROBE and max(self._shortfall(request).values()) == len(self._nodes):
                break
        for entry in passed:
            heapq.heappush(heap, entry)
        return found

    def _bind(self, key: Any, node: _Node, request: dict[str, int]) -> None:
        requested, allocatable, heaps = node.requested, node.allocatable, self._heaps
        for resource, amount in request.items():
            was = requested.get(resource, 0)
            requested[resource] = was + amount
            heap = heaps.get(resource)
            if heap is not None:
                heapq.heappush(heap, (was + amount - allocatable.get(resource, 0), node.index))
        self._dirty.add(node.index)
        self._bound[key] = (node, request)

    def _fit_error(self, shortfall: Mapping[str, int]) -> str:
        counts = sorted(f"{count} {_reason(r)}" for r, count in shortfall.items() if count)
        return f"0/{len(self._nodes)} nodes are available: {', '.join(counts)}."


def node_amounts(values: Mapping[str, object], *, where: str) -> dict[str, int]:
    """A node's capacity/allocatable strings as integer amounts."""
    return {str(r): to_amount(str(r), v, where=f"{where}.{r}") for r, v in values.items()}
