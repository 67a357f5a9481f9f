"""Steps about the mutating webhook: how it is registered (profile, failurePolicy, another
webhook, reachability, the namespace policy), its environment, which pods it was sent, and
what it made of a pod (the extended resource, resources removed, sizing annotations)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from sim.harness.targets.base import (
    Environment,
    PodOutcome,
    WebhookCalls,
    WebhookEnv,
    need,
)
from sim.peerpods.kata import kata_accepts_uint

from . import pods
from .expect import (
    SIDECAR_IMAGE,
    admitted_pod,
    assert_first_container_carries,
    assert_nothing_requests,
    operation_list,
)
from .world import World, step, submit


@given(parsers.parse('the webhook is registered as in the "{profile}" profile'))
def webhook_profile(env: Environment, profile: str) -> None:
    env.use_webhook_profile(profile)


@given(parsers.parse('the webhook runs with {name:w} set to "{value}"'))
def webhook_env(env: Environment, name: str, value: str) -> None:
    need(env, WebhookEnv).set_webhook_env(name, value)


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


@given(parsers.parse('the webhook is registered as in the "{profile}" profile with failurePolicy "{policy}"'))
def webhook_profile_with_policy(env: Environment, profile: str, policy: str) -> None:
    env.use_webhook_profile(profile, failure_policy=policy)


@given("the webhook endpoint cannot be reached")
def webhook_unreachable(env: Environment) -> None:
    env.make_webhook_unreachable()


@given(parsers.parse('peer pods are allowed only in namespace "{name}"'))
def peer_pod_policy(env: Environment, name: str) -> None:
    env.allow_peer_pods_only_in([name])


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


@given("the webhook adds no sizing annotations, as the document describes")
def document_profile(env: Environment) -> None:
    env.use_sizing_annotations(False)


@then(parsers.parse('the pod has no annotation "{key}"'))
def no_annotation(outcome: PodOutcome, key: str) -> None:
    found = pods.pod_annotations(admitted_pod(outcome))
    assert key not in found, f"the pod carries {key}={found[key]!r}"


@then(parsers.parse('init container "{name}" has no resources'))
def init_container_without_resources(outcome: PodOutcome, name: str) -> None:
    container = pods.find_container(admitted_pod(outcome), name, "initContainers")
    block = container.get("resources") or {}
    assert not block.get("requests") and not block.get("limits"), f"init container {name!r} still has {block}"


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


@then(parsers.parse('container "{name}" requests "{requests}" and is limited to "{limits}"'))
def container_keeps(outcome: PodOutcome, name: str, requests: str, limits: str) -> None:
    block = pods.find_container(admitted_pod(outcome), name).get("resources") or {}
    expected = pods.resources(requests, limits)
    for part in ("requests", "limits"):
        found = {k: pods.quantity(str(v)) for k, v in (block.get(part) or {}).items()}
        wanted = {k: pods.quantity(v) for k, v in (expected.get(part) or {}).items()}
        assert found == wanted, f"container {name!r} {part} {block.get(part)}, expected {expected.get(part)}"


@then(parsers.parse('the pod\'s "{short}" annotation is an integer Kata accepts'))
def annotation_kata_accepts(outcome: PodOutcome, short: str) -> None:
    key = pods.SIZING_PREFIX + short
    value = pods.pod_annotations(admitted_pod(outcome)).get(key)
    assert value is not None, f"the pod carries no {key}"
    assert kata_accepts_uint(value), (
        f"{key} is {value!r}, which Kata refuses (it reads an unsigned decimal integer: "
        "kata-containers 4.1.0 src/runtime/pkg/oci/utils.go, addHypervisorGPUOverrides), so the pod "
        "never runs; CAA v0.22.0 writes the GPU request sum with Quantity.String() "
        "(src/webhook/pkg/mutating/remove-resourcespec.go, adjustResourceSpec): request GPUs as "
        "plain integers"
    )
