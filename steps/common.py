"""Steps shared by every feature: the cluster's configuration, drafting pods, submitting them.

The state of one scenario lives in :class:`World`; the target's answers come back as
:class:`~sim.targets.base.PodOutcome` objects, passed on with ``target_fixture``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from pytest_bdd import given, parsers, then, when

from sim.bounds import MAX_MANIFEST_BYTES, excerpt
from sim.targets.base import Environment, Nodes, PodOutcome, WebhookEnv, need
from sim.yamlload import load_one
from steps import pods
from steps.pods import Pod


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


# --- configuration ---------------------------------------------------------------------


@given(parsers.parse('the webhook is registered as in the "{profile}" profile'))
def webhook_profile(env: Environment, profile: str) -> None:
    env.use_webhook_profile(profile)


@given(parsers.parse('the webhook is registered as in the "{profile}" profile with failurePolicy "{policy}"'))
def webhook_profile_with_policy(env: Environment, profile: str, policy: str) -> None:
    env.use_webhook_profile(profile, failure_policy=policy)


@given("the webhook endpoint cannot be reached")
def webhook_unreachable(env: Environment) -> None:
    env.make_webhook_unreachable()


@given(parsers.parse('the webhook runs with {name:w} set to "{value}"'))
def webhook_env(env: Environment, name: str, value: str) -> None:
    need(env, WebhookEnv).set_webhook_env(name, value)


@given("the webhook adds no sizing annotations, as the document describes")
def document_profile(env: Environment) -> None:
    env.use_sizing_annotations(False)


@given(step('a namespace "{name}"'))
def namespace(env: Environment, name: str) -> None:
    env.create_namespace(name)


@given(step('a namespace "{name}" labelled "{labels:Text}"'))
def labelled_namespace(env: Environment, name: str, labels: str) -> None:
    env.create_namespace(name, pods.resource_list(labels))


@given(parsers.parse('peer pods are allowed only in namespace "{name}"'))
def peer_pod_policy(env: Environment, name: str) -> None:
    env.allow_peer_pods_only_in([name])


@given(step('peer-pods-cm sets {key:w} to "{value:Text}"'))
def cm_sets(env: Environment, world: World, key: str, value: str) -> None:
    world.peer_pods_cm[key] = value
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@given(parsers.parse('peer-pods-cm sets INITDATA to the initdata of "{file_name}"'))
def cm_sets_initdata(env: Environment, world: World, file_name: str) -> None:
    world.peer_pods_cm["INITDATA"] = pods.encode_initdata(pods.initdata_toml(file_name))
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@given(parsers.parse("peer-pods-cm does not set {key:w}"))
def cm_unset(env: Environment, world: World, key: str) -> None:
    world.peer_pods_cm.pop(key, None)
    need(env, Nodes).set_peer_pods_config(world.peer_pods_cm)


@given(parsers.parse('a worker node "{name}"'))
def worker_node(env: Environment, world: World, name: str) -> None:
    need(env, Nodes).add_node(name)
    world.nodes.append(name)


@given(parsers.parse("{count:d} worker nodes"))
def worker_nodes(env: Environment, world: World, count: int) -> None:
    for index in range(count):
        worker_node(env, world, f"worker-{index}")


# --- drafting pods -----------------------------------------------------------------------


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


@given(step('the pod is annotated "{key}" with "{value:Text}"'))
def annotated(world: World, key: str, value: str) -> None:
    pods.annotate(world.draft(), key, value)


@given("the pod:")
def pod_manifest(world: World, docstring: str) -> None:
    manifest: Any = load_one(docstring, source='the "the pod:" manifest')  # the manifests' one loader
    world.add(manifest)


# --- submitting --------------------------------------------------------------------------


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


@when(parsers.parse('pod "{name}" in namespace "{namespace}" is deleted'))
def delete_pod(env: Environment, name: str, namespace: str) -> None:
    env.delete_pod(namespace, name)


@when(step('peer-pods-cm is changed to set {key:w} to "{value:Text}"'))
def cm_changed(env: Environment, world: World, key: str, value: str) -> None:
    cm_sets(env, world, key, value)


@when("the cloud-api-adaptors restart")
def adaptors_restart(env: Environment) -> None:
    need(env, Nodes).restart_adaptors()


# --- admission verdicts ------------------------------------------------------------------


def current_outcome(env: Environment, world: World) -> PodOutcome:
    """The latest state of the pod the scenario talks about."""
    return env.get_pod(*world.pod())


@then("the pod is admitted")
def pod_admitted(outcome: PodOutcome) -> None:
    assert outcome.admitted, f"the pod was refused: {outcome.denial}"


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


@then(parsers.parse('pod "{name}" in namespace "{namespace}" was admitted'))
def named_pod_admitted(env: Environment, name: str, namespace: str) -> None:
    state = env.get_pod(namespace, name)
    assert state.admitted, f"pod {namespace}/{name} was refused: {state.denial}"


@then(parsers.parse('pod "{name}" in namespace "{namespace}" was refused with a reason mentioning "{text}"'))
def named_pod_refused(env: Environment, name: str, namespace: str, text: str) -> None:
    state = env.get_pod(namespace, name)
    assert not state.admitted, f"pod {namespace}/{name} was admitted, but it must be refused"
    assert state.denial and text in state.denial, f"the refusal {state.denial!r} does not mention {text!r}"


def cloud_config_files(user_data: str) -> dict[str, str]:
    """The ``write_files`` of the cloud-config a target gave a pod VM: path -> content.

    This is the target's output under judgement, so it is parsed as a pod VM would parse it
    (``yaml.safe_load``: YAML that cloud-init and Go's decoder accept, anchors included, is
    not refused here), after a size bound, and anything malformed fails the scenario with
    the reason, quoting bounded excerpts.
    """
    assert user_data.startswith("#cloud-config"), f"not a cloud-config: {excerpt(user_data[:40])}"
    assert len(user_data) <= MAX_MANIFEST_BYTES, f"user data of {len(user_data):,} characters"
    try:
        document = yaml.safe_load(user_data) or {}
    except yaml.YAMLError as exc:
        raise AssertionError(f"user data is not valid YAML: {excerpt(str(exc))}") from None
    assert isinstance(document, dict), f"the cloud-config is not a mapping: {excerpt(document)}"
    entries = document.get("write_files") or []
    assert isinstance(entries, list), f"write_files is not a list: {excerpt(entries)}"
    files: dict[str, str] = {}
    for index, entry in enumerate(entries):
        assert isinstance(entry, dict), f"write_files[{index}] is not a mapping: {excerpt(entry)}"
        assert isinstance(entry.get("path"), str), f"write_files[{index}] has no path: {excerpt(entry)}"
        files[entry["path"]] = entry.get("content", "")
    return files
