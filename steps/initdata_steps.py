"""Steps of features/initdata.feature (steps it shares with other features are in common.py)."""

from __future__ import annotations

import hashlib
import tomllib

from pytest_bdd import given, parsers, then, when

from sim.harness.targets.base import (
    AdaptorProcess,
    Environment,
    Nodes,
    PodOutcome,
    PodVMs,
    need,
)

from . import pods
from .common import (
    World,
    step,
    submit,
)
from .expect import (
    ALLOW_LISTED,
    PEERPOD_DIR,
    assert_received,
    broken_initdata,
    decoded,
    inline_initdata_of,
    user_data_files,
)


@then(parsers.parse("the pod VM's user data carries the pod's annotation at \"{path}\""))
def user_data_carries_annotation(env: Environment, world: World, path: str) -> None:
    key = world.pod()
    sent = pods.pod_annotations(world.submitted[key])[pods.INITDATA_ANNOTATION]
    files = user_data_files(env, key)
    assert files.get(path) == sent, (
        f"{path} in the user data is {files.get(path)!r}, not the pod's annotation"
    )


@then(parsers.parse('the pod VM\'s user data carries nothing at "{path}"'))
def user_data_lacks(env: Environment, world: World, path: str) -> None:
    files = user_data_files(env, world.pod())
    assert path not in files, f"the user data writes {path}: {files[path][:60]!r}"


@then(parsers.parse('the pod VM received the initdata of "{file_name}"'))
def received(env: Environment, world: World, file_name: str) -> None:
    assert_received(env, world.pod(), file_name)


@then(step("the pod VM wrote {listed:QuotedList}"))
def wrote(env: Environment, world: World, listed: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    expected = listed.strip('"').replace('" and "', '", "').split('", "')
    missing = [path for path in expected if path not in report.written]
    assert not missing, f"the pod VM did not write {missing}; it wrote {sorted(report.written)}"


@then(parsers.parse('the pod VM ignored the keys "{first}" and "{second}"'))
def ignored(env: Environment, world: World, first: str, second: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    assert {first, second} <= set(report.ignored), f"ignored keys were {report.ignored}"
    escaped = [path for path in report.written if not path.startswith(PEERPOD_DIR + "/")]
    assert not escaped, f"files written outside {PEERPOD_DIR}: {escaped}"
    for key in (first, second):
        leaf = key.rsplit("/", 1)[-1]
        leaked = [path for path in report.written if path.rsplit("/", 1)[-1] == leaf]
        assert not leaked, f"the ignored key {key!r} was written as {leaked}"


@then(parsers.parse('the pod VM\'s initdata digest is the {algorithm} digest of "{file_name}"'))
def digest_is(env: Environment, world: World, algorithm: str, file_name: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    expected = hashlib.new(algorithm, pods.initdata_toml(file_name)).hexdigest()
    assert report.algorithm == algorithm, f"the pod VM used {report.algorithm}, expected {algorithm}"
    assert report.digest == expected, (
        f"initdata.digest {report.digest} != {algorithm}({file_name}) {expected}"
    )


@then(parsers.parse('the pod VM refused the initdata with an error mentioning "{mention}"'))
def refused(env: Environment, world: World, mention: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    assert report.error, "the pod VM accepted broken initdata"
    assert mention.lower() in report.error.lower(), f"the error {report.error!r} does not mention {mention!r}"


@then("the pod VM wrote no initdata file")
def wrote_nothing(env: Environment, world: World) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    written = [p for p in report.written if p.rsplit("/", 1)[-1] in ALLOW_LISTED]
    assert not written, f"the pod VM wrote {written} from broken initdata"


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
    toml = inline_initdata_of(world)
    algorithm = tomllib.loads(toml.decode())["algorithm"]
    report = need(env, PodVMs).guest_report(*world.pod())
    assert report.error is None, f"the pod VM refused the initdata: {report.error}"
    expected = hashlib.new(algorithm, toml).hexdigest()
    assert (report.algorithm, report.digest) == (algorithm, expected), (
        f"the pod VM digested {report.algorithm}:{report.digest}, expected {algorithm}:{expected}"
    )


@then(step('the pod VM\'s user data carries the TOML of "{file_name}", encoded again, at "{path}"'))
def user_data_carries_toml(env: Environment, world: World, file_name: str, path: str) -> None:
    files = user_data_files(env, world.pod())
    assert path in files, f"the user data writes nothing at {path}: {sorted(files)}"
    assert decoded(files[path], path) == pods.initdata_toml(file_name), (
        f"{path} does not decode to the TOML of {file_name}"
    )


@then(step('the cloud-api-adaptor on node "{node}" is not running, having said "{text}"'))
def adaptor_exited(env: Environment, node: str, text: str) -> None:
    error = need(env, AdaptorProcess).adaptor_error(node)
    assert error is not None, f"the cloud-api-adaptor on node {node} is running"
    assert text in error, f"the adaptor said {error!r}, not {text!r}"


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
