"""Steps about pods: namespaces, drafting a pod (containers, resources, annotations, its
initdata), creating, updating and deleting it, and what became of it (admitted, refused,
Running, Pending)."""

from __future__ import annotations

from typing import Any

from pytest_bdd import given, parsers, then, when

from sim.harness.targets.base import (
    Environment,
    PodOutcome,
)
from sim.yamlload import load_one

from . import pods
from .expect import (
    SANDBOX_FAILED,
    admitted_pod,
    assert_pending,
    assert_running,
    batch_phases,
    broken_initdata,
)
from .world import World, current_outcome, step, submit


@given(step('a namespace "{name}"'))
def namespace(env: Environment, name: str) -> None:
    env.create_namespace(name)


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


@then(step('the pod never runs: its sandbox fails with a reason mentioning "{text}"'))
def sandbox_fails(env: Environment, world: World, text: str) -> None:
    state = current_outcome(env, world)
    assert state.admitted, f"the pod was refused at admission: {state.denial}"
    assert state.phase == "Pending", f"the pod is {state.phase} ({state.reason}); kubelet keeps it Pending"
    reason = state.reason or ""
    assert SANDBOX_FAILED in reason, f"the pod's reason {reason!r} is not {SANDBOX_FAILED}"
    assert text.lower() in reason.lower(), f"the reason {reason!r} does not mention {text!r}"


@then("the pod is Running")
def current_running(env: Environment, world: World) -> None:
    assert_running(current_outcome(env, world), "the pod")


@then(parsers.parse('pod "{name}" in namespace "{namespace}" is Pending because of "{reason}"'))
def named_pending(env: Environment, name: str, namespace: str, reason: str) -> None:
    assert_pending(env.get_pod(namespace, name), f"pod {namespace}/{name}", reason)


@given("the pod is annotated with this initdata:")
def annotated_inline(world: World, docstring: str) -> None:
    world.inline_initdata = docstring.encode("utf-8")
    pods.annotate(world.draft(), pods.INITDATA_ANNOTATION, pods.encode_initdata(world.inline_initdata))


@when("the pod is updated", target_fixture="outcome")
def update_pod(env: Environment, world: World) -> PodOutcome:
    key = world.pod()
    stored = env.get_pod(*key)
    assert stored.pod is not None, f"pod {key[0]}/{key[1]} was refused: {stored.denial}"
    world.submitted[key] = pods.snapshot(stored.pod)
    return env.create_pod(pods.snapshot(stored.pod), operation="UPDATE")


@when(step('pod "{name}" in namespace "{namespace}" is created'), target_fixture="outcome")
def create_named(env: Environment, world: World, name: str, namespace: str) -> PodOutcome:
    return submit(env, world, world.drafts[(namespace, name)])


@when(
    parsers.parse('another pod "{name}" that declares "{declared}" is created in namespace "{namespace}"'),
    target_fixture="outcome",
)
def create_declaring_pod(
    env: Environment, world: World, name: str, declared: str, namespace: str
) -> PodOutcome:
    pod = world.add(pods.peer_pod(name, namespace))
    pod["spec"]["containers"][0]["resources"] = pods.resources(declared, declared)
    return submit(env, world, pod)


@then(parsers.parse('pod "{name}" in namespace "{namespace}" was admitted'))
def named_pod_admitted(env: Environment, name: str, namespace: str) -> None:
    state = env.get_pod(namespace, name)
    assert state.admitted, f"pod {namespace}/{name} was refused: {state.denial}"


@then(parsers.parse('pod "{name}" in namespace "{namespace}" was refused with a reason mentioning "{text}"'))
def named_pod_refused(env: Environment, name: str, namespace: str, text: str) -> None:
    state = env.get_pod(namespace, name)
    assert not state.admitted, f"pod {namespace}/{name} was admitted, but it must be refused"
    assert state.denial and text in state.denial, f"the refusal {state.denial!r} does not mention {text!r}"


@then(parsers.parse('pod "{name}" in namespace "{namespace}" is Running'))
def named_running(env: Environment, name: str, namespace: str) -> None:
    assert_running(env.get_pod(namespace, name), f"pod {namespace}/{name}")


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


@then(parsers.parse('pod "{name}" in namespace "{namespace}" carries the pod overhead "{overhead}"'))
def pod_overhead(env: Environment, name: str, namespace: str, overhead: str) -> None:
    state = env.get_pod(namespace, name)
    assert state.pod is not None, f"pod {namespace}/{name} was refused: {state.denial}"
    found = (state.pod.get("spec") or {}).get("overhead") or {}
    for resource, value in pods.resource_list(overhead).items():
        assert resource in found and pods.quantity(found[resource]) == pods.quantity(value), (
            f"pod overhead {found}, expected {resource}={value}"
        )


@when(parsers.parse('pod "{name}" in namespace "{namespace}" is deleted'))
def delete_pod(env: Environment, name: str, namespace: str) -> None:
    env.delete_pod(namespace, name)


@given(step('a namespace "{name}" labelled "{labels:Text}"'))
def labelled_namespace(env: Environment, name: str, labels: str) -> None:
    env.create_namespace(name, pods.resource_list(labels))


@given(step('it has a container "{container}" requesting "{requests:Text}" and limited to "{limits:Text}"'))
def extra_container(world: World, container: str, requests: str, limits: str) -> None:
    entry = {
        "name": container,
        "image": "registry.example/app:1.0",
        "resources": pods.resources(requests, limits),
    }
    world.draft()["spec"]["containers"].append(entry)


@given(
    step('it has an init container "{container}" requesting "{requests:Text}" and limited to "{limits:Text}"')
)
def init_container(world: World, container: str, requests: str, limits: str) -> None:
    entry = {
        "name": container,
        "image": "registry.example/init:1.0",
        "resources": pods.resources(requests, limits),
    }
    world.draft()["spec"].setdefault("initContainers", []).append(entry)


@then(parsers.parse('the pod is refused with a reason mentioning "{text}"'))
def pod_refused(outcome: PodOutcome, text: str) -> None:
    assert not outcome.admitted, "the pod was admitted, but it must be refused"
    assert outcome.denial and text in outcome.denial, (
        f"the refusal {outcome.denial!r} does not mention {text!r}"
    )


@then(parsers.parse('the refusal mentions "{text}"'))
def refusal_mentions(outcome: PodOutcome, text: str) -> None:
    assert outcome.denial and text in outcome.denial, (
        f"the refusal {outcome.denial!r} does not mention {text!r}"
    )


@then(parsers.parse("the pod is refused with code {code:d}"))
def refused_with_code(outcome: PodOutcome, code: int) -> None:
    assert not outcome.admitted, "the pod was admitted, but it must be refused"
    assert outcome.code == code, f"the refusal has code {outcome.code}, expected {code}: {outcome.denial}"


@when(parsers.parse('the pod is updated with the label "{key}" set to "{value}"'), target_fixture="outcome")
def update_with_label(env: Environment, world: World, key: str, value: str) -> PodOutcome:
    stored = admitted_pod(env.get_pod(*world.pod()))
    updated = pods.snapshot(dict(stored))
    updated.setdefault("metadata", {}).setdefault("labels", {})[key] = value
    return env.create_pod(updated, operation="UPDATE")


@then(parsers.parse('the pod carries the label "{key}" set to "{value}"'))
def carries_label(outcome: PodOutcome, key: str, value: str) -> None:
    labels = (admitted_pod(outcome).get("metadata") or {}).get("labels") or {}
    assert labels.get(key) == value, f"expected label {key}={value!r}, found {labels.get(key)!r}"
