"""Then-steps on what the mutating webhook did to a pod."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pytest_bdd import given, parsers, then, when

from sim.targets.base import Environment, PodOutcome, WebhookCalls, need
from steps import pods
from steps.common import World, submit


def admitted_pod(outcome: PodOutcome) -> Mapping[str, Any]:
    assert outcome.admitted and outcome.pod is not None, f"the pod was refused: {outcome.denial}"
    return outcome.pod


def assert_first_container_carries(pod: Mapping[str, Any], resource: str, value: str) -> None:
    first = pods.containers(pod)[0]
    request, limit = pods.requested(first, resource)
    assert request is not None and pods.quantity(request) == pods.quantity(value), (
        f"first container {first.get('name')!r} requests {resource}={request!r}, expected {value!r}"
    )
    assert limit is not None and pods.quantity(limit) == pods.quantity(value), (
        f"first container {first.get('name')!r} is limited to {resource}={limit!r}, expected {value!r}"
    )


def assert_nothing_requests(pod: Mapping[str, Any], resource: str) -> None:
    for kind in ("containers", "initContainers"):
        for container in pods.containers(pod, kind):
            assert pods.requested(container, resource) == (None, None), (
                f"{kind[:-1]} {container.get('name')!r} carries {resource}: {container.get('resources')}"
            )


@then(parsers.parse('the first container requests and is limited to "{resource}" "{value}"'))
def first_container_carries(outcome: PodOutcome, resource: str, value: str) -> None:
    assert_first_container_carries(admitted_pod(outcome), resource, value)


@then(parsers.parse('no container requests "{resource}"'))
def no_container_requests(outcome: PodOutcome, resource: str) -> None:
    assert_nothing_requests(admitted_pod(outcome), resource)


@then(parsers.parse('the pod has no annotation "{key}"'))
def no_annotation(outcome: PodOutcome, key: str) -> None:
    found = pods.pod_annotations(admitted_pod(outcome))
    assert key not in found, f"the pod carries {key}={found[key]!r}"


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


@then(parsers.parse('init container "{name}" has no resources'))
def init_container_without_resources(outcome: PodOutcome, name: str) -> None:
    container = pods.find_container(admitted_pod(outcome), name, "initContainers")
    block = container.get("resources") or {}
    assert not block.get("requests") and not block.get("limits"), f"init container {name!r} still has {block}"


@then(parsers.parse('container "{name}" has no resources other than "{resource}"'))
def container_only_extended(outcome: PodOutcome, name: str, resource: str) -> None:
    block = pods.find_container(admitted_pod(outcome), name).get("resources") or {}
    for part in ("requests", "limits"):
        others = sorted(set(block.get(part) or {}) - {resource})
        assert not others, f"container {name!r} still {part} {others}"


@then(parsers.parse('pod "{name}" has the first container requesting "{resource}" "{value}"'))
def named_pod_carries(env: Environment, world: World, name: str, resource: str, value: str) -> None:
    key = next(k for k in world.submitted if k[1] == name)
    assert_first_container_carries(admitted_pod(env.get_pod(*key)), resource, value)


@then(parsers.parse('pod "{name}" has no container requesting "{resource}"'))
def named_pod_lacks(env: Environment, world: World, name: str, resource: str) -> None:
    key = next(k for k in world.submitted if k[1] == name)
    assert_nothing_requests(admitted_pod(env.get_pod(*key)), resource)


@then("the pod is admitted without the extended resource")
def admitted_unmutated(outcome: PodOutcome) -> None:
    assert_nothing_requests(admitted_pod(outcome), "kata.peerpods.io/vm")


@then("none of those pods was mutated")
def batch_unmutated(env: Environment, world: World) -> None:
    assert world.batch, "no pod was created"
    mutated = []
    for namespace, name in world.batch:
        state = env.get_pod(namespace, name)
        pod = admitted_pod(state)
        first = pods.containers(pod)[0]
        if pods.requested(first, "kata.peerpods.io/vm") != (None, None):
            mutated.append(namespace)
    assert not mutated, f"pods were mutated in excluded namespaces: {mutated}"


@when(parsers.parse('a peer pod is created in every namespace of the "{profile}" exclusion list'))
def peer_pod_in_every_excluded_namespace(env: Environment, world: World, profile: str) -> None:
    listing = pods.FIXTURES / "namespaces" / f"{profile}-excluded.txt"
    names = [line.strip() for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert names, f"{listing} lists no namespace"
    for namespace in names:
        env.create_namespace(namespace)
        submit(env, world, world.add(pods.peer_pod("escaper", namespace)))
        world.batch.append((namespace, "escaper"))


# --- the deployed registration, other webhooks, and what the webhook received -----------

SIDECAR_IMAGE = "registry.example/sidecar:1.0"


@given(parsers.parse('the MutatingWebhookConfiguration of the "{profile}" profile is deployed'))
def deployed_configuration(env: Environment, profile: str) -> None:
    env.use_deployed_webhook_configuration(profile)


@given(
    parsers.parse(
        'another webhook, registered after it, adds a container "{container}" requesting "{requests}"'
        ' and limited to "{limits}"'
    )
)
def sidecar_webhook(env: Environment, container: str, requests: str, limits: str) -> None:
    entry = {"name": container, "image": SIDECAR_IMAGE, "resources": pods.resources(requests, limits)}
    need(env, WebhookCalls).add_sidecar_webhook(entry)


@given(
    parsers.parse('another webhook, registered after it, adds a container "{container}" without resources')
)
def sidecar_webhook_bare(env: Environment, container: str) -> None:
    need(env, WebhookCalls).add_sidecar_webhook({"name": container, "image": SIDECAR_IMAGE})


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


def _operations(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@then(parsers.parse('the webhook received the pod\'s requests "{operations}"'))
def webhook_received(env: Environment, world: World, operations: str) -> None:
    received = need(env, WebhookCalls).webhook_requests(*world.pod())
    pod = "/".join(world.pod())
    assert received == _operations(operations), (
        f"the webhook received {received or 'nothing'} for pod {pod}, expected {operations}"
    )


@then("the pod was never sent to the webhook")
def never_sent(env: Environment, world: World) -> None:
    received = need(env, WebhookCalls).webhook_requests(*world.pod())
    assert not received, f"pod {'/'.join(world.pod())} was sent to the webhook: {received}"


@then("none of those pods was sent to the webhook")
def batch_never_sent(env: Environment, world: World) -> None:
    assert world.batch, "no pod was created"
    calls = need(env, WebhookCalls)
    sent = [namespace for namespace, name in world.batch if calls.webhook_requests(namespace, name)]
    assert not sent, f"pods in excluded namespaces were sent to the webhook: {sent}"


@then(
    parsers.parse('a peer pod "{name}" created in namespace "{namespace}" is sent to the webhook and mutated')
)
def control_pod_sent(env: Environment, world: World, name: str, namespace: str) -> None:
    env.create_namespace(namespace)
    outcome = submit(env, world, world.add(pods.peer_pod(name, namespace)))
    received = need(env, WebhookCalls).webhook_requests(namespace, name)
    assert received, (
        f"pod {namespace}/{name} was not sent to the webhook: the configuration sends nothing, "
        "so its exclusions prove nothing"
    )
    assert_first_container_carries(admitted_pod(outcome), "kata.peerpods.io/vm", "1")


@then(parsers.parse("the pod is refused with code {code:d}"))
def refused_with_code(outcome: PodOutcome, code: int) -> None:
    assert not outcome.admitted, "the pod was admitted, but it must be refused"
    assert outcome.code == code, f"the refusal has code {outcome.code}, expected {code}: {outcome.denial}"


@then(parsers.parse('container "{name}" requests "{requests}" and is limited to "{limits}"'))
def container_keeps(outcome: PodOutcome, name: str, requests: str, limits: str) -> None:
    block = pods.find_container(admitted_pod(outcome), name).get("resources") or {}
    expected = pods.resources(requests, limits)
    for part in ("requests", "limits"):
        found = {k: pods.quantity(str(v)) for k, v in (block.get(part) or {}).items()}
        wanted = {k: pods.quantity(v) for k, v in (expected.get(part) or {}).items()}
        assert found == wanted, f"container {name!r} {part} {block.get(part)}, expected {expected.get(part)}"
