"""Then-steps on scheduling, node capacity and the worker node's accounting."""

from __future__ import annotations

from pytest_bdd import parsers, then

from sim.targets.base import Environment, Nodes, PodOutcome, need
from steps import pods
from steps.common import World, current_outcome, step


def assert_running(state: PodOutcome, who: str) -> None:
    assert state.admitted, f"{who} was refused: {state.denial}"
    assert state.phase == "Running", f"{who} is {state.phase} ({state.reason}), expected Running"


def assert_pending(state: PodOutcome, who: str, reason: str) -> None:
    assert state.admitted, f"{who} was refused: {state.denial}"
    assert state.phase == "Pending", f"{who} is {state.phase}, expected Pending"
    assert state.reason and reason in state.reason, f"{who} waits for {state.reason!r}, expected {reason!r}"


@then("the pod is Running")
def current_running(env: Environment, world: World) -> None:
    assert_running(current_outcome(env, world), "the pod")


@then(parsers.parse('pod "{name}" in namespace "{namespace}" is Running'))
def named_running(env: Environment, name: str, namespace: str) -> None:
    assert_running(env.get_pod(namespace, name), f"pod {namespace}/{name}")


@then(parsers.parse('pod "{name}" in namespace "{namespace}" is Pending because of "{reason}"'))
def named_pending(env: Environment, name: str, namespace: str, reason: str) -> None:
    assert_pending(env.get_pod(namespace, name), f"pod {namespace}/{name}", reason)


def batch_phases(env: Environment, world: World) -> dict[tuple[str, str], PodOutcome]:
    return {key: env.get_pod(*key) for key in world.batch}


@then(step("{count:d} of them {verb:IsAre} Running"))
def batch_running(env: Environment, world: World, count: int, verb: str) -> None:
    states = batch_phases(env, world)
    running = [key for key, state in states.items() if state.phase == "Running"]
    assert len(running) == int(count), f"{len(running)} running, expected {count}: " + ", ".join(
        f"{k[1]}={s.phase}({s.reason})" for k, s in states.items()
    )


@then(step('{count:d} of them {verb:IsAre} Pending because of "{reason}"'))
def batch_pending(env: Environment, world: World, count: int, verb: str, reason: str) -> None:
    states = batch_phases(env, world)
    pending = [k for k, s in states.items() if s.phase == "Pending" and s.reason and reason in s.reason]
    assert len(pending) == int(count), (
        f"{len(pending)} pending for {reason!r}, expected {count}: "
        + ", ".join(f"{k[1]}={s.phase}({s.reason})" for k, s in states.items())
    )


@then(parsers.parse('node "{node}" advertises {count:d} "{resource}"'))
def node_advertises(env: Environment, node: str, count: int, resource: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert resource in capacity, f"node {node} advertises no {resource}: {capacity}"
    assert pods.quantity(capacity[resource]) == count, (
        f"node {node} advertises {resource}={capacity[resource]}"
    )


@then(parsers.parse('node "{node}" advertises no "{resource}"'))
def node_advertises_none(env: Environment, node: str, resource: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert pods.quantity(capacity.get(resource, "0")) == 0, (
        f"node {node} advertises {resource}={capacity[resource]}"
    )


def allocated(env: Environment, node: str, resource: str) -> str:
    return need(env, Nodes).node_allocated(node).get(resource, "0")


@then(parsers.parse('node "{node}" has {count:d} "{resource}" allocated'))
def node_allocated_count(env: Environment, node: str, count: int, resource: str) -> None:
    found = allocated(env, node, resource)
    assert pods.quantity(found) == count, f"node {node} has {resource}={found} allocated, expected {count}"


@then(parsers.parse('every node has {count:d} "{resource}" allocated'))
def every_node_allocated(env: Environment, world: World, count: int, resource: str) -> None:
    found = {node: allocated(env, node, resource) for node in world.nodes}
    assert all(pods.quantity(v) == count for v in found.values()), f"allocated {resource}: {found}"


@then(parsers.parse('node "{node}" has "{resource}" "{value}" allocated'))
def node_allocated_quantity(env: Environment, node: str, resource: str, value: str) -> None:
    found = allocated(env, node, resource)
    assert pods.quantity(found) == pods.quantity(value), (
        f"node {node} has {resource}={found}, expected {value}"
    )


@then(parsers.parse('pod "{name}" in namespace "{namespace}" carries the pod overhead "{overhead}"'))
def pod_overhead(env: Environment, name: str, namespace: str, overhead: str) -> None:
    state = env.get_pod(namespace, name)
    assert state.pod is not None, f"pod {namespace}/{name} was refused: {state.denial}"
    found = (state.pod.get("spec") or {}).get("overhead") or {}
    for resource, value in pods.resource_list(overhead).items():
        assert resource in found and pods.quantity(found[resource]) == pods.quantity(value), (
            f"pod overhead {found}, expected {resource}={value}"
        )
