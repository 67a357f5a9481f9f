"""Steps of features/namespace_exclusion.feature (steps it shares with other features are in common.py)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then, when

from sim.harness.targets.base import (
    Environment,
    PodOutcome,
    WebhookCalls,
    need,
)

from . import pods
from .common import (
    World,
    submit,
)
from .expect import (
    admitted_pod,
    assert_first_container_carries,
    assert_running,
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


@then(parsers.parse('pod "{name}" in namespace "{namespace}" is Running'))
def named_running(env: Environment, name: str, namespace: str) -> None:
    assert_running(env.get_pod(namespace, name), f"pod {namespace}/{name}")
