"""Steps of features/node_limits.feature (steps it shares with other features are in common.py)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from sim.harness.targets.base import (
    Environment,
    Nodes,
    need,
)

from . import pods
from .common import (
    World,
    cm_sets,
    step,
    submit,
    worker_node,
)
from .expect import (
    allocated,
    batch_phases,
)


@given(parsers.parse("peer-pods-cm does not set {key:w}"))
def cm_unset(env: Environment, world: World, key: str) -> None:
    world.peer_pods_cm.pop(key, None)
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@given(parsers.parse("{count:d} worker nodes"))
def worker_nodes(env: Environment, world: World, count: int) -> None:
    for index in range(count):
        worker_node(env, world, f"worker-{index}")


@when(parsers.parse('{count:d} peer pods are created in namespace "{namespace}"'))
def create_batch(env: Environment, world: World, count: int, namespace: str) -> None:
    for index in range(count):
        pod = world.add(pods.peer_pod(f"peer-{index}", namespace))
        submit(env, world, pod)
        world.batch.append((namespace, f"peer-{index}"))


@when("the first of them is deleted")
def delete_first(env: Environment, world: World) -> None:
    namespace, name = world.batch.pop(0)
    env.delete_pod(namespace, name)


@when(step('peer-pods-cm is changed to set {key:w} to "{value:Text}"'))
def cm_changed(env: Environment, world: World, key: str, value: str) -> None:
    cm_sets(env, world, key, value)


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


@then(parsers.parse('node "{node}" advertises no "{resource}"'))
def node_advertises_none(env: Environment, node: str, resource: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert pods.quantity(capacity.get(resource, "0")) == 0, (
        f"node {node} advertises {resource}={capacity[resource]}"
    )


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
