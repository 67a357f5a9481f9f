"""Steps on initdata: annotating pods with it, and what their pod VMs made of it.

The expected digests are computed here with hashlib over the fixture's bytes, and the
expected encodings with gzip and base64, independently of the reference implementation.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import tomllib

from pytest_bdd import given, parsers, then

from sim.targets.base import Environment, PodVMs, need
from steps import pods
from steps.common import World, cloud_config_files, step

PEERPOD_DIR = "/run/peerpod"
ALLOW_LISTED = ("aa.toml", "cdh.toml", "policy.rego")
DEFAULT_INITDATA_ALGORITHM = "sha256"


def unpadded_initdata() -> str:
    """A valid initdata string with its last base64 padding character removed."""
    toml = pods.initdata_toml("global.toml")
    for extra in range(3):
        encoded = pods.encode_initdata(toml + b"#" * extra)
        if encoded.endswith("="):
            return encoded[:-1]
    raise AssertionError("could not produce a padded encoding")  # pragma: no cover


def broken_initdata(problem: str) -> str:
    """The broken initdata strings of the ID-007 examples."""
    if problem == "lacks one base64 padding character":
        return unpadded_initdata()
    if problem == "is not base64 at all":
        return "this is *not* base64!"
    if problem == "is base64 but not gzip":
        return base64.b64encode(pods.initdata_toml("global.toml")).decode()
    if problem == "is gzip but not TOML":
        return base64.b64encode(gzip.compress(b"algorithm = = sha256\n[data", mtime=0)).decode()
    if problem == 'names the algorithm "md5"':
        return pods.encode_initdata(pods.initdata_toml("unknown-algorithm.toml"))
    if problem == "has no version":
        return pods.encode_initdata(pods.initdata_toml("no-version.toml"))
    raise AssertionError(f"unknown kind of broken initdata: {problem!r}")


@given(parsers.parse('the pod is annotated with the initdata of "{file_name}"'))
def annotated_with_initdata(world: World, file_name: str) -> None:
    pods.annotate(
        world.draft(), pods.INITDATA_ANNOTATION, pods.encode_initdata(pods.initdata_toml(file_name))
    )


@given(parsers.parse("the pod is annotated with initdata that {problem}"))
def annotated_with_broken_initdata(world: World, problem: str) -> None:
    pods.annotate(world.draft(), pods.INITDATA_ANNOTATION, broken_initdata(problem))


def user_data_files(env: Environment, key: tuple[str, str]) -> dict[str, str]:
    """The cloud-config write_files of the pod's VM: path -> content."""
    user_data = need(env, PodVMs).pod_vm(*key)["user_data"]
    assert user_data.startswith("#cloud-config"), f"user data is not a cloud-config: {user_data[:40]!r}"
    return cloud_config_files(user_data)


def assert_received(env: Environment, key: tuple[str, str], file_name: str) -> None:
    """The pod VM decoded exactly this initdata: same digest, same allow-listed files."""
    toml = pods.initdata_toml(file_name)
    document = tomllib.loads(toml.decode())
    report = need(env, PodVMs).guest_report(*key)
    assert report.error is None, f"the pod VM refused its initdata: {report.error}"
    assert not report.dummy, "the pod VM fell back to the default initdata"
    expected = hashlib.new(document["algorithm"], toml).hexdigest()
    assert (report.algorithm, report.digest) == (document["algorithm"], expected), (
        f"the pod VM digested {report.algorithm}:{report.digest}, "
        f"expected {document['algorithm']}:{expected}"
    )
    for name, content in document["data"].items():
        if name in ALLOW_LISTED:
            path = f"{PEERPOD_DIR}/{name}"
            assert report.written.get(path) == hashlib.sha256(content.encode()).hexdigest(), (
                f"{path} was not written with the content of {file_name}"
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
    assert len(report.digest) == hashlib.sha256().digest_size * 2, (
        f"digest {report.digest!r} is not sha256"
    )


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
    assert mention.lower() in report.error.lower(), (
        f"the error {report.error!r} does not mention {mention!r}"
    )


@then("the pod VM wrote no initdata file")
def wrote_nothing(env: Environment, world: World) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    written = [p for p in report.written if p.rsplit("/", 1)[-1] in ALLOW_LISTED]
    assert not written, f"the pod VM wrote {written} from broken initdata"
