"""Steps about how peer pods are deployed on the nodes: ConfigMap peer-pods-cm, Secret
peer-pods-secret, the deployment profile, the worker nodes, and the cloud-api-adaptors that
read them (their restarts, what they advertise, what is allocated)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from sim.harness.targets.base import (
    AdaptorProcess,
    Environment,
    Nodes,
    need,
)

from . import pods
from .expect import (
    allocated,
    broken_initdata,
)
from .world import World, step


@given(step('peer-pods-cm sets {key:w} to "{value:Text}"'))
def cm_sets(env: Environment, world: World, key: str, value: str) -> None:
    world.peer_pods_cm[key] = value
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@given(parsers.parse('peer-pods-cm sets INITDATA to the initdata of "{file_name}"'))
def cm_sets_initdata(env: Environment, world: World, file_name: str) -> None:
    world.peer_pods_cm["INITDATA"] = pods.encode_initdata(pods.initdata_toml(file_name))
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@given(parsers.parse('a worker node "{name}"'))
def worker_node(env: Environment, world: World, name: str) -> None:
    need(env, Nodes).add_node(name)
    world.nodes.append(name)


@when("the cloud-api-adaptors restart")
def adaptors_restart(env: Environment) -> None:
    need(env, Nodes).restart_adaptors()


@then(step('node "{node}" does not advertise "{resource}" at all'))
def node_lacks(env: Environment, node: str, resource: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert resource not in capacity, f"node {node} advertises {resource}={capacity[resource]!r}"


@then(parsers.parse('node "{node}" advertises {count:d} "{resource}"'))
def node_advertises(env: Environment, node: str, count: int, resource: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert resource in capacity, f"node {node} advertises no {resource}: {capacity}"
    assert pods.quantity(capacity[resource]) == count, (
        f"node {node} advertises {resource}={capacity[resource]}"
    )


@then(parsers.parse('node "{node}" has {count:d} "{resource}" allocated'))
def node_allocated_count(env: Environment, node: str, count: int, resource: str) -> None:
    found = allocated(env, node, resource)
    assert pods.quantity(found) == count, f"node {node} has {resource}={found} allocated, expected {count}"


@given("peer-pods-cm sets INITDATA to this initdata:")
def cm_inline(env: Environment, world: World, docstring: str) -> None:
    world.inline_initdata = docstring.encode("utf-8")
    world.peer_pods_cm["INITDATA"] = pods.encode_initdata(world.inline_initdata)
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@given(step("peer-pods-cm sets INITDATA to initdata that {problem}"))
def cm_broken(env: Environment, world: World, problem: str) -> None:
    world.peer_pods_cm["INITDATA"] = broken_initdata(problem)
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@when(step('peer-pods-cm is changed to set INITDATA to the initdata of "{file_name}"'))
def cm_changed_initdata(env: Environment, world: World, file_name: str) -> None:
    world.peer_pods_cm["INITDATA"] = pods.encode_initdata(pods.initdata_toml(file_name))
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@then(step('the cloud-api-adaptor on node "{node}" is not running, having said "{text}"'))
def adaptor_exited(env: Environment, node: str, text: str) -> None:
    error = need(env, AdaptorProcess).adaptor_error(node)
    assert error is not None, f"the cloud-api-adaptor on node {node} is running"
    assert text in error, f"the adaptor said {error!r}, not {text!r}"


@given(parsers.parse("peer-pods-cm does not set {key:w}"))
def cm_unset(env: Environment, world: World, key: str) -> None:
    world.peer_pods_cm.pop(key, None)
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@given(parsers.parse("{count:d} worker nodes"))
def worker_nodes(env: Environment, world: World, count: int) -> None:
    for index in range(count):
        worker_node(env, world, f"worker-{index}")


@when(step('peer-pods-cm is changed to set {key:w} to "{value:Text}"'))
def cm_changed(env: Environment, world: World, key: str, value: str) -> None:
    cm_sets(env, world, key, value)


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


@given('peer pods are deployed as in the "openshift" profile')
def openshift_deployment(env: Environment) -> None:
    env.use_deployment_profile("openshift")


@given(step('peer-pods-secret sets {key:w} to "{value:Text}"'))
def secret_sets(env: Environment, world: World, key: str, value: str) -> None:
    world.peer_pods_secret[key] = value
    need(env, AdaptorProcess).set_peer_pods_secret(world.peer_pods_secret)


@then(step('node "{node}" advertises "{resource}" as "{value:Text}"'))
def node_advertises_exactly(env: Environment, node: str, resource: str, value: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert resource in capacity, f"node {node} does not advertise {resource} at all: {capacity}"
    assert capacity[resource] == value, f"node {node} advertises {resource}={capacity[resource]!r}"
