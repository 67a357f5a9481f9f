"""The world of a scenario, and the steps several features share (drafting pods, submitting
them, the cluster's configuration, what became of a pod).

The state of one scenario lives in :class:`World`; the target's answers come back as
:class:`~sim.harness.targets.base.PodOutcome` objects, passed on with ``target_fixture``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_bdd import given, parsers, then, when

from sim.harness.targets.base import (
    Environment,
    Nodes,
    PodOutcome,
    PodVMs,
    WebhookCalls,
    WebhookEnv,
    need,
)
from sim.yamlload import load_one

from . import pods
from .expect import (
    DEFAULT_INITDATA_ALGORITHM,
    SANDBOX_FAILED,
    admitted_pod,
    allocated,
    assert_first_container_carries,
    assert_nothing_requests,
    assert_pending,
    assert_received,
    assert_running,
    broken_initdata,
    current_vm,
    operation_list,
)
from .pods import Pod


class _Text:
    """A quoted step parameter, which may be empty (""): parse's custom type protocol."""

    pattern = r'[^"]*'

    def __call__(self, value: str) -> str:
        return value


class _Pattern:
    """A parse type that matches ``pattern`` and returns the text."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __call__(self, value: str) -> str:
        return value


#: The one parser style of the step language: ``parsers.parse`` with these types.
#: ``{name:Text}`` is a quoted value that may be empty; ``{verb:IsAre}`` is "is" or "are";
#: ``{listed:QuotedList}`` is ``"a"``, ``"a" and "b"`` or ``"a", "b" and "c"``.
TYPES: dict[str, Any] = {
    "Text": _Text(),
    "IsAre": _Pattern(r"is|are"),
    "QuotedList": _Pattern(r'"[^"]+"(?:(?:, | and )"[^"]+")*'),
}


def step(pattern: str) -> Any:
    """``parsers.parse`` with the suite's types (use for every step with parameters)."""
    return parsers.parse(pattern, extra_types=TYPES)


@dataclass
class World:
    """What one scenario has drafted and submitted so far."""

    drafts: dict[tuple[str, str], Pod] = field(default_factory=dict)
    submitted: dict[tuple[str, str], Pod] = field(default_factory=dict)
    current: tuple[str, str] | None = None
    batch: list[tuple[str, str]] = field(default_factory=list)
    peer_pods_cm: dict[str, str] = field(default_factory=dict)
    peer_pods_secret: dict[str, str] = field(default_factory=dict)
    nodes: list[str] = field(default_factory=list)
    #: initdata given inline in the feature (a TOML docstring), as bytes
    inline_initdata: bytes | None = None

    def pod(self) -> tuple[str, str]:
        """(namespace, name) of "the pod": the one the scenario last drafted or created."""
        assert self.current is not None, "no pod has been created yet"
        return self.current

    def draft(self) -> Pod:
        """The pod the scenario is talking about ("the pod", "its container")."""
        assert self.current is not None, "no pod has been described yet"
        return self.drafts[self.current]

    def add(self, pod: Pod) -> Pod:
        """Remember a drafted pod and make it the current one."""
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        self.drafts[key] = pod
        self.current = key
        return pod


@pytest.fixture
def world() -> World:
    return World()


def submit(env: Environment, world: World, pod: Pod) -> PodOutcome:
    """Create a pod on the target, remembering exactly what was sent."""
    key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
    world.submitted[key] = pods.snapshot(pod)
    world.current = key
    return env.create_pod(pod)


def current_outcome(env: Environment, world: World) -> PodOutcome:
    """The latest state of the pod the scenario talks about."""
    return env.get_pod(*world.pod())


@given(parsers.parse('the webhook is registered as in the "{profile}" profile'))
def webhook_profile(env: Environment, profile: str) -> None:
    env.use_webhook_profile(profile)


@given(parsers.parse('the webhook runs with {name:w} set to "{value}"'))
def webhook_env(env: Environment, name: str, value: str) -> None:
    need(env, WebhookEnv).set_webhook_env(name, value)


@given(step('a namespace "{name}"'))
def namespace(env: Environment, name: str) -> None:
    env.create_namespace(name)


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


@given(parsers.parse('a pod "{name}" in namespace "{namespace}" with runtimeClassName "{runtime_class}"'))
def pod_with_class(world: World, name: str, namespace: str, runtime_class: str) -> None:
    world.add(pods.new_pod(name, namespace, runtime_class))


@given(parsers.parse('a pod "{name}" in namespace "{namespace}" without a runtimeClassName'))
def pod_without_class(world: World, name: str, namespace: str) -> None:
    world.add(pods.new_pod(name, namespace, None))


@given(step('its container "{container}" requests "{requests:Text}" and is limited to "{limits:Text}"'))
def first_container_resources(world: World, container: str, requests: str, limits: str) -> None:
    first = pods.containers(world.draft())[0]
    first["name"] = container
    if block := pods.resources(requests, limits):
        first["resources"] = block


@given(step('the pod is annotated "{key}" with "{value:Text}"'))
def annotated(world: World, key: str, value: str) -> None:
    pods.annotate(world.draft(), key, value)


@given("the pod:")
def pod_manifest(world: World, docstring: str) -> None:
    manifest: Any = load_one(docstring, source='the "the pod:" manifest')  # the manifests' one loader
    world.add(manifest)


@when("the pod is created", target_fixture="outcome")
def create_current(env: Environment, world: World) -> PodOutcome:
    return submit(env, world, world.draft())


@when("the pods are created")
def create_all(env: Environment, world: World) -> None:
    for pod in list(world.drafts.values()):
        submit(env, world, pod)


@when(parsers.parse('a peer pod "{name}" is created in namespace "{namespace}"'), target_fixture="outcome")
def create_peer_pod(env: Environment, world: World, name: str, namespace: str) -> PodOutcome:
    return submit(env, world, world.add(pods.peer_pod(name, namespace)))


@when("the cloud-api-adaptors restart")
def adaptors_restart(env: Environment) -> None:
    need(env, Nodes).restart_adaptors()


@then("the pod is admitted")
def pod_admitted(outcome: PodOutcome) -> None:
    assert outcome.admitted, f"the pod was refused: {outcome.denial}"


@given(parsers.parse('the pod is annotated with the initdata of "{file_name}"'))
def annotated_with_initdata(world: World, file_name: str) -> None:
    pods.annotate(
        world.draft(), pods.INITDATA_ANNOTATION, pods.encode_initdata(pods.initdata_toml(file_name))
    )


@given(parsers.parse("the pod is annotated with initdata that {problem}"))
def annotated_with_broken_initdata(world: World, problem: str) -> None:
    pods.annotate(world.draft(), pods.INITDATA_ANNOTATION, broken_initdata(problem))


@then(parsers.parse('pod "{name}" in namespace "{namespace}" received the initdata of "{file_name}"'))
def named_received(env: Environment, name: str, namespace: str, file_name: str) -> None:
    assert_received(env, (namespace, name), file_name)


@then("the pod VM used the default initdata")
def used_default(env: Environment, world: World) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    assert report.dummy, "the pod VM did not fall back to the default initdata"
    assert report.algorithm == DEFAULT_INITDATA_ALGORITHM, (
        f"default initdata digested with {report.algorithm}"
    )
    assert len(report.digest) == hashlib.sha256().digest_size * 2, f"digest {report.digest!r} is not sha256"


@then(step('the pod never runs: its sandbox fails with a reason mentioning "{text}"'))
def sandbox_fails(env: Environment, world: World, text: str) -> None:
    state = current_outcome(env, world)
    assert state.admitted, f"the pod was refused at admission: {state.denial}"
    assert state.phase == "Pending", f"the pod is {state.phase} ({state.reason}); kubelet keeps it Pending"
    reason = state.reason or ""
    assert SANDBOX_FAILED in reason, f"the pod's reason {reason!r} is not {SANDBOX_FAILED}"
    assert text.lower() in reason.lower(), f"the reason {reason!r} does not mention {text!r}"


@then("no pod VM was requested")
def no_pod_vm(env: Environment, world: World) -> None:
    state = current_outcome(env, world)
    assert state.vm is None, f"the pod has a pod VM {state.vm}"
    assert need(env, PodVMs).pod_vms() == [], f"pod VMs exist: {need(env, PodVMs).pod_vms()}"


@then(step('node "{node}" does not advertise "{resource}" at all'))
def node_lacks(env: Environment, node: str, resource: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert resource not in capacity, f"node {node} advertises {resource}={capacity[resource]!r}"


@then(parsers.parse('the first container requests and is limited to "{resource}" "{value}"'))
def first_container_carries(outcome: PodOutcome, resource: str, value: str) -> None:
    assert_first_container_carries(admitted_pod(outcome), resource, value)


@then(parsers.parse('no container requests "{resource}"'))
def no_container_requests(outcome: PodOutcome, resource: str) -> None:
    assert_nothing_requests(admitted_pod(outcome), resource)


@then(parsers.parse('the pod\'s "{short}" annotation is "{value}"'))
def sizing_annotation(outcome: PodOutcome, short: str, value: str) -> None:
    key = pods.SIZING_PREFIX + short
    found = pods.pod_annotations(admitted_pod(outcome))
    if value == "absent":
        assert key not in found, f"expected no {key}, found {found.get(key)!r}"
    else:
        assert found.get(key) == value, f"expected {key}={value!r}, found {found.get(key)!r}"


@then("the webhook left the pod's resources as submitted")
def resources_untouched(outcome: PodOutcome, world: World) -> None:
    pod = admitted_pod(outcome)
    sent = world.submitted[world.current] if world.current else {}
    for kind in ("containers", "initContainers"):
        before = [c.get("resources") or {} for c in pods.containers(sent, kind)]
        after = [c.get("resources") or {} for c in pods.containers(pod, kind)]
        assert after == before, f"{kind} resources changed from {before} to {after}"
    added = [key for key in pods.SIZING_ANNOTATIONS if key in pods.pod_annotations(pod)]
    assert not added, f"sizing annotations were added: {added}"


@then(parsers.parse('container "{name}" has no resources'))
def container_without_resources(outcome: PodOutcome, name: str) -> None:
    container = pods.find_container(admitted_pod(outcome), name)
    assert not (container.get("resources") or {}).get("requests") and not (
        container.get("resources") or {}
    ).get("limits"), f"container {name!r} still has resources {container.get('resources')}"


@then(parsers.parse('container "{name}" has no resources other than "{resource}"'))
def container_only_extended(outcome: PodOutcome, name: str, resource: str) -> None:
    block = pods.find_container(admitted_pod(outcome), name).get("resources") or {}
    for part in ("requests", "limits"):
        others = sorted(set(block.get(part) or {}) - {resource})
        assert not others, f"container {name!r} still {part} {others}"


@given(parsers.parse('the MutatingWebhookConfiguration of the "{profile}" profile is deployed'))
def deployed_configuration(env: Environment, profile: str) -> None:
    env.use_deployed_webhook_configuration(profile)


@then(parsers.parse('the webhook received the pod\'s requests "{operations}"'))
def webhook_received(env: Environment, world: World, operations: str) -> None:
    received = need(env, WebhookCalls).webhook_requests(*world.pod())
    pod = "/".join(world.pod())
    assert received == operation_list(operations), (
        f"the webhook received {received or 'nothing'} for pod {pod}, expected {operations}"
    )


@then(parsers.parse("the pod VM has {vcpus:d} vCPUs and {memory:d} MiB of memory"))
def sized(env: Environment, world: World, vcpus: int, memory: int) -> None:
    facts = current_vm(env, world)
    assert (facts["vcpus"], facts["memory_mib"]) == (vcpus, memory), (
        f"the pod VM has {facts['vcpus']} vCPUs and {facts['memory_mib']} MiB"
    )


@then("no pod VM and no volume remains")
def nothing_left(env: Environment) -> None:
    assert need(env, PodVMs).pod_vms() == [], f"pod VMs remain: {need(env, PodVMs).pod_vms()}"
    left = need(env, PodVMs).leftovers()
    assert left == [], f"left behind: {left}"


@then("the pod is Running")
def current_running(env: Environment, world: World) -> None:
    assert_running(current_outcome(env, world), "the pod")


@then(parsers.parse('pod "{name}" in namespace "{namespace}" is Pending because of "{reason}"'))
def named_pending(env: Environment, name: str, namespace: str, reason: str) -> None:
    assert_pending(env.get_pod(namespace, name), f"pod {namespace}/{name}", reason)


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
