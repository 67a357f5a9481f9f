"""Steps of features/webhook_registration.feature (steps it shares with other features are in common.py)."""

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
)
from .expect import (
    SIDECAR_IMAGE,
    admitted_pod,
)


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


@then(parsers.parse('container "{name}" requests "{requests}" and is limited to "{limits}"'))
def container_keeps(outcome: PodOutcome, name: str, requests: str, limits: str) -> None:
    block = pods.find_container(admitted_pod(outcome), name).get("resources") or {}
    expected = pods.resources(requests, limits)
    for part in ("requests", "limits"):
        found = {k: pods.quantity(str(v)) for k, v in (block.get(part) or {}).items()}
        wanted = {k: pods.quantity(v) for k, v in (expected.get(part) or {}).items()}
        assert found == wanted, f"container {name!r} {part} {block.get(part)}, expected {expected.get(part)}"
