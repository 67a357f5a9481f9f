"""Resource-fit scheduling: effective requests, fit, FitError text, release, heaps."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.kube.scheduler import Scheduler, effective_request, format_amount, node_amounts
from sim.quantities import QuantityError, to_amount

VM = "kata.peerpods.io/vm"


def container(name: str, requests: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "image": "img", **extra}
    if requests:
        entry["resources"] = {"requests": requests, "limits": dict(requests)}
    return entry


def a_pod(
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    overhead: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": containers}
    if init:
        spec["initContainers"] = init
    if overhead:
        spec["overhead"] = overhead
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}


def peer(overhead: bool = True) -> dict[str, int]:
    the_pod = a_pod(
        [container("app", {VM: "1"})], overhead={"cpu": "250m", "memory": "120Mi"} if overhead else None
    )
    return effective_request(the_pod)


def cluster(
    nodes: int, limit: int | None = 10, cpu: str = "8", memory: str = "32Gi", pods: int = 110
) -> Scheduler:
    scheduler = Scheduler()
    for index in range(nodes):
        capacity = {"cpu": cpu, "memory": memory, "pods": str(pods)}
        if limit is not None:
            capacity[VM] = str(limit)
        scheduler.add_node(f"worker-{index}", node_amounts(capacity, where="test"))
    return scheduler


# --------------------------------------------------------------------------- effective request


def test_sum_of_containers_plus_overhead() -> None:
    the_pod = a_pod(
        [container("a", {"cpu": "500m", "memory": "1Gi"}), container("b", {"cpu": "1"})],
        overhead={"cpu": "250m", "memory": "120Mi"},
    )
    assert effective_request(the_pod) == {"cpu": 1750, "memory": (1 << 30) + 120 * (1 << 20), "pods": 1}


def test_largest_init_container_wins_when_larger_than_the_sum() -> None:
    the_pod = a_pod(
        [container("a", {"cpu": "1"}), container("b", {"cpu": "1"})],
        init=[container("i1", {"cpu": "3", "memory": "1Gi"}), container("i2", {"cpu": "1"})],
    )
    assert effective_request(the_pod) == {"cpu": 3000, "memory": 1 << 30, "pods": 1}


def test_sidecar_init_containers_add_to_the_running_sum() -> None:
    sidecar = container("proxy", {"cpu": "500m"}, restartPolicy="Always")
    the_pod = a_pod([container("a", {"cpu": "1"})], init=[sidecar, container("setup", {"cpu": "2"})])
    # running: 1 + 0.5; during setup: 0.5 (sidecar) + 2 = 2.5
    assert effective_request(the_pod)["cpu"] == 2500


def test_zero_requests_are_not_requests() -> None:
    assert effective_request(a_pod([container("a", {"cpu": "0", VM: "0"})])) == {"pods": 1}


def test_cpu_rounds_up_to_millicores_and_others_to_units() -> None:
    assert to_amount("cpu", "0.0001", where="x") == 1
    assert to_amount("memory", "0.5", where="x") == 1
    assert to_amount("cpu", 2, where="x") == 2000


def test_bad_quantity_names_pod_container_and_field() -> None:
    with pytest.raises(
        QuantityError, match=r"pod ns/p: containers\[0\] \(app\)\.resources\.requests\.cpu: 'two'"
    ):
        effective_request(a_pod([container("app", {"cpu": "two"})]))
    with pytest.raises(QuantityError, match=r"spec\.overhead\.memory"):
        effective_request(a_pod([container("app")], overhead={"memory": "lots"}))


def test_amounts_format_back_as_quantities() -> None:
    assert format_amount("cpu", 250) == "250m" and format_amount("cpu", 2000) == "2"
    assert format_amount("memory", 120 << 20) == "120Mi" and format_amount("memory", 1000) == "1000"
    assert format_amount(VM, 3) == "3"


# --------------------------------------------------------------------------- fit and reasons


def test_default_limit_ten_then_pending_with_kube_scheduler_reason() -> None:
    scheduler = cluster(1)
    placements = [scheduler.schedule(i, peer()) for i in range(11)]
    assert [p.node for p in placements[:10]] == ["worker-0"] * 10
    assert placements[10].node is None
    assert placements[10].reason == f"0/1 nodes are available: 1 Insufficient {VM}."
    assert scheduler.allocated("worker-0") == {VM: 10, "cpu": 2500, "memory": 1200 << 20, "pods": 10}


@pytest.mark.parametrize("limit", [1, 3, 7])
def test_custom_limit(limit: int) -> None:
    scheduler = cluster(1, limit=limit)
    nodes = [scheduler.schedule(i, peer()).node for i in range(limit + 1)]
    assert nodes.count("worker-0") == limit and nodes[-1] is None


def test_several_nodes_are_filled_evenly_and_the_rest_waits() -> None:
    scheduler = cluster(3, limit=2)
    placements = [scheduler.schedule(i, peer()) for i in range(7)]
    assert (
        sorted(p.node for p in placements[:6] if p.node)
        == ["worker-0"] * 2 + ["worker-1"] * 2 + ["worker-2"] * 2
    )
    assert placements[6].reason == f"0/3 nodes are available: 3 Insufficient {VM}."
    assert [p.node for p in placements[:3]] == ["worker-0", "worker-1", "worker-2"], "spread, not packed"


def test_a_node_without_the_resource_never_fits() -> None:
    scheduler = cluster(2, limit=None)
    placement = scheduler.schedule("p", peer())
    assert placement.node is None and placement.reason == f"0/2 nodes are available: 2 Insufficient {VM}."


def test_negative_limit_is_the_adaptors_business_zero_capacity_fits_nothing() -> None:
    scheduler = cluster(1, limit=0)
    assert scheduler.schedule("p", peer()).reason == f"0/1 nodes are available: 1 Insufficient {VM}."


def test_release_frees_the_unit() -> None:
    scheduler = cluster(1, limit=1)
    assert scheduler.schedule("a", peer()).node == "worker-0"
    assert scheduler.schedule("b", peer()).node is None
    assert scheduler.release("a") == "worker-0"
    assert scheduler.allocated("worker-0") == {}
    assert scheduler.schedule("b", peer()).node == "worker-0"
    assert scheduler.release("missing") is None


def test_overhead_is_accounted_and_can_exhaust_cpu() -> None:
    scheduler = cluster(1, limit=10, cpu="1")
    nodes = [scheduler.schedule(i, peer()).node for i in range(5)]
    assert nodes == ["worker-0"] * 4 + [None]
    assert scheduler.schedule("x", peer()).reason == "0/1 nodes are available: 1 Insufficient cpu."


def test_every_lacking_resource_of_every_node_is_counted_and_sorted() -> None:
    scheduler = Scheduler()
    scheduler.add_node(
        "small", node_amounts({"cpu": "1", "memory": "1Gi", "pods": "110", VM: "0"}, where="t")
    )
    scheduler.add_node(
        "big", node_amounts({"cpu": "64", "memory": "256Gi", "pods": "110", VM: "0"}, where="t")
    )
    request = effective_request(a_pod([container("app", {"cpu": "2", "memory": "2Gi", VM: "1"})]))
    reason = scheduler.schedule("p", request).reason
    assert (
        reason == f"0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 2 Insufficient {VM}."
    )


def test_pod_slots_are_a_resource() -> None:
    scheduler = cluster(1, pods=2)
    assert scheduler.schedule("a", peer()).node and scheduler.schedule("b", peer()).node
    assert scheduler.schedule("c", peer()).reason == "0/1 nodes are available: 1 Too many pods."


def test_no_nodes() -> None:
    assert Scheduler().schedule("p", peer()).reason == "no nodes available to schedule pods"


def test_joint_fit_skips_nodes_that_lack_something_else() -> None:
    scheduler = Scheduler()
    scheduler.add_node(
        "roomy-vm-no-cpu", node_amounts({"cpu": "100m", "memory": "32Gi", "pods": "110", VM: "10"}, where="t")
    )
    scheduler.add_node(
        "cpu-ok", node_amounts({"cpu": "8", "memory": "32Gi", "pods": "110", VM: "1"}, where="t")
    )
    assert scheduler.schedule("p", peer()).node == "cpu-ok"
    assert (
        scheduler.schedule("q", peer()).reason
        == f"0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient {VM}."
    )


def test_capacity_change_applies_to_new_pods_only() -> None:
    scheduler = cluster(1, limit=2)
    scheduler.schedule("a", peer())
    scheduler.schedule("b", peer())
    scheduler.set_allocatable(
        "worker-0", node_amounts({"cpu": "8", "memory": "32Gi", "pods": "110", VM: "1"}, where="t")
    )
    assert scheduler.allocated("worker-0")[VM] == 2, "bound pods stay"
    scheduler.release("a")
    assert scheduler.schedule("c", peer()).node is None, "still over the new limit"
    scheduler.release("b")
    assert scheduler.schedule("c", peer()).node == "worker-0"


def test_ordinary_pods_use_cpu_and_memory() -> None:
    scheduler = cluster(2, limit=None)
    request = effective_request(a_pod([container("app", {"cpu": "5"})]))
    assert {scheduler.schedule(i, request).node for i in range(2)} == {"worker-0", "worker-1"}
    assert scheduler.schedule(3, request).reason == "0/2 nodes are available: 2 Insufficient cpu."


def test_heavy_churn_keeps_counts_exact() -> None:
    scheduler = cluster(5, limit=3)
    bound: list[int] = []
    for step in range(400):
        placement = scheduler.schedule(step, peer())
        if placement.node:
            bound.append(step)
        if step % 3 == 0 and bound:
            scheduler.release(bound.pop(step % len(bound)))
        total = sum(scheduler.allocated(n).get(VM, 0) for n in scheduler.node_names())
        assert total == len(bound) <= 15
        assert all(scheduler.allocated(n).get(VM, 0) <= 3 for n in scheduler.node_names())


def test_double_binding_is_refused() -> None:
    scheduler = cluster(1)
    scheduler.schedule("a", peer())
    with pytest.raises(ValueError, match="already bound"):
        scheduler.schedule("a", peer())


# --------------------------------------------------------------------------- against brute force

RESOURCES = ("cpu", "memory", "pods", VM)


def brute_force(
    nodes: dict[str, dict[str, int]], used: dict[str, dict[str, int]], request: dict[str, int]
) -> tuple[set[str], str]:
    """Every node that fits, and the FitError text, by looking at every node."""
    fitting: set[str] = set()
    counts: dict[str, int] = {}
    for name, allocatable in nodes.items():
        short = [r for r, a in request.items() if allocatable.get(r, 0) - used[name].get(r, 0) < a]
        if not short:
            fitting.add(name)
        for resource in short:
            label = "Too many pods" if resource == "pods" else f"Insufficient {resource}"
            counts[label] = counts.get(label, 0) + 1
    reasons = sorted(f"{count} {label}" for label, count in counts.items())
    return fitting, f"0/{len(nodes)} nodes are available: {', '.join(reasons)}."


node_strategy = st.fixed_dictionaries(
    {"cpu": st.integers(0, 4000), "memory": st.integers(0, 4000), "pods": st.integers(0, 5)},
    optional={VM: st.integers(0, 4)},
)
request_strategy = st.dictionaries(st.sampled_from(("cpu", "memory", VM)), st.integers(1, 2000), max_size=3)


@settings(max_examples=150, deadline=None)
@given(
    nodes=st.lists(node_strategy, min_size=1, max_size=6),
    steps=st.lists(st.tuples(st.booleans(), request_strategy, st.integers(0, 50)), max_size=40),
)
def test_matches_brute_force(
    nodes: list[dict[str, int]], steps: list[tuple[bool, dict[str, int], int]]
) -> None:
    scheduler = Scheduler()
    allocatable = {f"n{i}": node for i, node in enumerate(nodes)}
    for name, node in allocatable.items():
        scheduler.add_node(name, node)
    used: dict[str, dict[str, int]] = {name: {} for name in allocatable}
    bound: dict[int, tuple[str, dict[str, int]]] = {}
    for key, (create, raw, pick) in enumerate(steps):
        if create:
            request = {**raw, "pods": 1}
            fitting, reason = brute_force(allocatable, used, request)
            placement = scheduler.schedule(key, request)
            if placement.node is None:
                assert not fitting and placement.reason == reason
            else:
                assert placement.node in fitting
                bound[key] = (placement.node, request)
                for resource, amount in request.items():
                    used[placement.node][resource] = used[placement.node].get(resource, 0) + amount
        elif bound:
            victim = sorted(bound)[pick % len(bound)]
            node_name, released = bound.pop(victim)
            assert scheduler.release(victim) == node_name
            for resource, amount in released.items():
                used[node_name][resource] -= amount
        for name in allocatable:
            assert scheduler.allocated(name) == {r: a for r, a in used[name].items() if a}


def test_probe_gives_up_when_no_node_has_the_other_resource() -> None:
    scheduler = Scheduler()
    for index in range(40):
        scheduler.add_node(
            f"busy-{index}",
            node_amounts({"cpu": "100m", "memory": "32Gi", "pods": "110", VM: "10"}, where="t"),
        )
    reason = scheduler.schedule("p", peer()).reason
    assert reason == "0/40 nodes are available: 40 Insufficient cpu."
    assert all(scheduler.allocated(n) == {} for n in scheduler.node_names())


def test_a_fitting_node_deep_in_the_heap_is_still_found() -> None:
    scheduler = Scheduler()
    for index in range(40):
        scheduler.add_node(
            f"busy-{index}",
            node_amounts({"cpu": "100m", "memory": "32Gi", "pods": "110", VM: "10"}, where="t"),
        )
    scheduler.add_node(
        "spare", node_amounts({"cpu": "8", "memory": "32Gi", "pods": "110", VM: "1"}, where="t")
    )
    assert scheduler.schedule("p", peer()).node == "spare"
    reason = scheduler.schedule("q", peer()).reason
    assert reason == f"0/41 nodes are available: 1 Insufficient {VM}, 40 Insufficient cpu.", (
        "sorted as strings"
    )
