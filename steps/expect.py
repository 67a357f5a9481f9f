"""What the step modules share besides the world: expectations and facts read from pods,
pod VMs and nodes, computed independently of the reference implementation.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import tomllib
from collections.abc import Mapping
from typing import Any

import yaml

from sim.bounds import MAX_MANIFEST_BYTES, excerpt
from sim.harness.targets.base import (
    Environment,
    LparCheck,
    Nodes,
    PodOutcome,
    PodVMFacts,
    PodVMs,
    need,
)
from sim.peerpods import initdata

from . import pods
from .world import World


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
        f"the pod VM digested {report.algorithm}:{report.digest}, expected {document['algorithm']}:{expected}"
    )
    for name, content in document["data"].items():
        if name in ALLOW_LISTED:
            path = f"{PEERPOD_DIR}/{name}"
            assert report.written.get(path) == hashlib.sha256(content.encode()).hexdigest(), (
                f"{path} was not written with the content of {file_name}"
            )


SANDBOX_FAILED = "FailedCreatePodSandBox"


def inline_initdata_of(world: World) -> bytes:
    assert world.inline_initdata is not None, "no initdata was given inline in this scenario"
    return world.inline_initdata


def decoded(value: str, path: str) -> bytes:
    """The file's initdata as the pod VM decodes it: base64 ignoring line breaks, as Go's
    streaming decoder does (CAA writes it as a YAML literal block, with a final newline)."""
    try:
        return initdata.decode(value)
    except initdata.InitdataError as exc:
        raise AssertionError(f"{path} in the user data is not gzip+base64: {exc}") from None


def verdict(verdicts: list[LparCheck], name: str) -> LparCheck:
    found = [check for check in verdicts if check.name == name]
    assert found, f"no prerequisite named {name!r}; checked: {[check.name for check in verdicts]}"
    return found[0]


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


SIDECAR_IMAGE = "registry.example/sidecar:1.0"


def operation_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


IBM_Z_MACHINE = re.compile(r"^[0-9]{4}$")


def current_vm(env: Environment, world: World) -> PodVMFacts:
    return need(env, PodVMs).pod_vm(*world.pod())


def disk(facts: PodVMFacts, dev: str) -> dict[str, Any]:
    found = [d for d in facts["disks"] if d["dev"] == dev]
    assert found, f"the pod VM has no disk {dev}: {facts['disks']}"
    return dict(found[0])


def namespace_of(world: World, name: str) -> str:
    for namespace, pod_name in world.submitted:
        if pod_name == name:
            return namespace
    raise AssertionError(f"no pod {name!r} was created in this scenario")


def assert_running(state: PodOutcome, who: str) -> None:
    assert state.admitted, f"{who} was refused: {state.denial}"
    assert state.phase == "Running", f"{who} is {state.phase} ({state.reason}), expected Running"


def assert_pending(state: PodOutcome, who: str, reason: str) -> None:
    assert state.admitted, f"{who} was refused: {state.denial}"
    assert state.phase == "Pending", f"{who} is {state.phase}, expected Pending"
    assert state.reason and reason in state.reason, f"{who} waits for {state.reason!r}, expected {reason!r}"


def batch_phases(env: Environment, world: World) -> dict[tuple[str, str], PodOutcome]:
    return {key: env.get_pod(*key) for key in world.batch}


def allocated(env: Environment, node: str, resource: str) -> str:
    return need(env, Nodes).node_allocated(node).get(resource, "0")
