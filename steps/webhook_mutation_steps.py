"""Steps of features/webhook_mutation.feature (steps it shares with other features are in common.py)."""

from __future__ import annotations

from pytest_bdd import given, parsers, then

from sim.harness.targets.base import (
    Environment,
    PodOutcome,
)
from sim.peerpods.kata import kata_accepts_uint

from . import pods
from .common import (
    World,
    step,
)
from .expect import (
    admitted_pod,
    assert_first_container_carries,
    assert_nothing_requests,
)


@given("the webhook adds no sizing annotations, as the document describes")
def document_profile(env: Environment) -> None:
    env.use_sizing_annotations(False)


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


@then(parsers.parse("the pod is refused with code {code:d}"))
def refused_with_code(outcome: PodOutcome, code: int) -> None:
    assert not outcome.admitted, "the pod was admitted, but it must be refused"
    assert outcome.code == code, f"the refusal has code {outcome.code}, expected {code}: {outcome.denial}"


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
