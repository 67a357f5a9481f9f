"""Steps a new user reaches for: inline initdata, the sandbox, adaptors that exit, named containers.

Expected values are computed here with the standard library (base64, gzip, hashlib) from
what the feature says, independently of the reference implementation.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import tomllib

from pytest_bdd import given, then, when

from sim.targets.base import AdaptorProcess, Environment, Nodes, PodOutcome, PodVMs, need
from steps import pods
from steps.common import World, current_outcome, step, submit
from steps.initdata_steps import broken_initdata, user_data_files

SANDBOX_FAILED = "FailedCreatePodSandBox"


def _inline(world: World) -> bytes:
    assert world.inline_initdata is not None, "no initdata was given inline in this scenario"
    return world.inline_initdata


# --- initdata given inline ---------------------------------------------------------------------


@given("the pod is annotated with this initdata:")
def annotated_inline(world: World, docstring: str) -> None:
    world.inline_initdata = docstring.encode("utf-8")
    pods.annotate(world.draft(), pods.INITDATA_ANNOTATION, pods.encode_initdata(world.inline_initdata))


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


@then("the pod VM received that initdata, digested with the algorithm it names")
def received_inline(env: Environment, world: World) -> None:
    toml = _inline(world)
    algorithm = tomllib.loads(toml.decode())["algorithm"]
    report = need(env, PodVMs).guest_report(*world.pod())
    assert report.error is None, f"the pod VM refused the initdata: {report.error}"
    expected = hashlib.new(algorithm, toml).hexdigest()
    assert (report.algorithm, report.digest) == (algorithm, expected), (
        f"the pod VM digested {report.algorithm}:{report.digest}, expected {algorithm}:{expected}"
    )


def _decoded(value: str, path: str) -> bytes:
    try:
        return gzip.decompress(base64.b64decode(value, validate=True))
    except (binascii.Error, OSError, EOFError) as exc:
        raise AssertionError(f"{path} in the user data is not gzip+base64: {exc}") from None


@then(step('the pod VM\'s user data carries the TOML of "{file_name}", encoded again, at "{path}"'))
def user_data_carries_toml(env: Environment, world: World, file_name: str, path: str) -> None:
    files = user_data_files(env, world.pod())
    assert path in files, f"the user data writes nothing at {path}: {sorted(files)}"
    assert _decoded(files[path], path) == pods.initdata_toml(file_name), (
        f"{path} does not decode to the TOML of {file_name}"
    )


# --- the sandbox (the Kata runtime) and the adaptor's process -----------------------------------


@then(step('the pod never runs: its sandbox fails with a reason mentioning "{text}"'))
def sandbox_fails(env: Environment, world: World, text: str) -> None:
    state = current_outcome(env, world)
    assert state.admitted, f"the pod was refused at admission: {state.denial}"
    assert state.phase != "Running", "the pod is Running with broken initdata"
    reason = state.reason or ""
    assert SANDBOX_FAILED in reason, f"the pod's reason {reason!r} is not {SANDBOX_FAILED}"
    assert text.lower() in reason.lower(), f"the reason {reason!r} does not mention {text!r}"


@then("no pod VM was requested")
def no_pod_vm(env: Environment, world: World) -> None:
    state = current_outcome(env, world)
    assert state.vm is None, f"the pod has a pod VM {state.vm}"
    assert need(env, PodVMs).pod_vms() == [], f"pod VMs exist: {need(env, PodVMs).pod_vms()}"


@then(step('the cloud-api-adaptor on node "{node}" is not running, having said "{text}"'))
def adaptor_exited(env: Environment, node: str, text: str) -> None:
    error = need(env, AdaptorProcess).adaptor_error(node)
    assert error is not None, f"the cloud-api-adaptor on node {node} is running"
    assert text in error, f"the adaptor said {error!r}, not {text!r}"


@then(step('node "{node}" advertises "{resource}" as "{value:Text}"'))
def node_advertises_exactly(env: Environment, node: str, resource: str, value: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert resource in capacity, f"node {node} does not advertise {resource} at all: {capacity}"
    assert capacity[resource] == value, f"node {node} advertises {resource}={capacity[resource]!r}"


@then(step('node "{node}" does not advertise "{resource}" at all'))
def node_lacks(env: Environment, node: str, resource: str) -> None:
    capacity = need(env, Nodes).node_capacity(node)
    assert resource not in capacity, f"node {node} advertises {resource}={capacity[resource]!r}"


# --- the pod, updated; containers by name -------------------------------------------------------


@given("peer pods are deployed as in the \"openshift\" profile")
def openshift_deployment(env: Environment) -> None:
    env.use_deployment_profile("openshift")


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


@given(step('peer-pods-secret sets {key:w} to "{value:Text}"'))
def secret_sets(env: Environment, world: World, key: str, value: str) -> None:
    world.peer_pods_secret[key] = value
    need(env, AdaptorProcess).set_peer_pods_secret(world.peer_pods_secret)


@then(step('the pod still carries its pod-level resources "{amounts}"'))
def pod_level_resources(outcome: PodOutcome, amounts: str) -> None:
    assert outcome.pod is not None, f"the pod was refused: {outcome.denial}"
    block = (outcome.pod.get("spec") or {}).get("resources") or {}
    expected = pods.resource_list(amounts)
    for part in ("requests", "limits"):
        found = {k: pods.quantity(v) for k, v in (block.get(part) or {}).items()}
        wanted = {k: pods.quantity(v) for k, v in expected.items()}
        assert found == wanted, f"pod-level {part} are {block.get(part)}, expected {amounts}"
