"""Steps of features/upstream_facts.feature (steps it shares with other features are in common.py)."""

from __future__ import annotations

from pytest_bdd import given, then

from sim.harness.targets.base import (
    Environment,
    Nodes,
    PodOutcome,
    need,
)

from . import pods
from .common import (
    step,
)


@given(step('a namespace "{name}" labelled "{labels:Text}"'))
def labelled_namespace(env: Environment, name: str, labels: str) -> None:
    env.create_namespace(name, pods.resource_list(labels))


@then(step('node "{node}" advertises "{resource}" as "{value:Text}"'))
def node_advertises_exactly(env: Environment, node: str, resource: str, value: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert resource in capacity, f"node {node} does not advertise {resource} at all: {capacity}"
    assert capacity[resource] == value, f"node {node} advertises {resource}={capacity[resource]!r}"


@then(step('container "{name}" requests and is limited to "{resource}" "{value}"'))
def named_container_carries(outcome: PodOutcome, name: str, resource: str, value: str) -> None:
    assert outcome.pod is not None, f"the pod was refused: {outcome.denial}"
    container = pods.find_container(outcome.pod, name)
    request, limit = pods.requested(container, resource)
    assert (request, limit) == (value, value), (
        f"container {name} requests {request!r} and is limited to {limit!r} of {resource}"
    )


@then(step('container "{name}" requests no "{resource}"'))
def named_container_lacks(outcome: PodOutcome, name: str, resource: str) -> None:
    assert outcome.pod is not None, f"the pod was refused: {outcome.denial}"
    request, limit = pods.requested(pods.find_container(outcome.pod, name), resource)
    assert (request, limit) == (None, None), f"container {name} carries {resource}: {request!r}/{limit!r}"


@then(step('the pod still carries its pod-level resources "{amounts}"'))
def pod_level_resources(outcome: PodOutcome, amounts: str) -> None:
    assert outcome.pod is not None, f"the pod was refused: {outcome.denial}"
    block = (outcome.pod.get("spec") or {}).get("resources") or {}
    expected = pods.resource_list(amounts)
    for part in ("requests", "limits"):
        found = {k: pods.quantity(v) for k, v in (block.get(part) or {}).items()}
        wanted = {k: pods.quantity(v) for k, v in expected.items()}
        assert found == wanted, f"pod-level {part} are {block.get(part)}, expected {amounts}"
