"""Steps of features/podvm_initdata.feature (steps it shares with other features are in common.py)."""

from __future__ import annotations

import hashlib
import tomllib

from pytest_bdd import parsers, then

from sim.harness.targets.base import (
    Environment,
    PodVMs,
    need,
)

from . import pods
from .common import (
    World,
)
from .expect import (
    IBM_Z_MACHINE,
    PEERPOD_DIR,
    namespace_of,
)


@then(parsers.parse('the guest reports architecture "{arch}" and an IBM Z machine type'))
def guest_arch(env: Environment, world: World, arch: str) -> None:
    report = need(env, PodVMs).guest_report(*world.pod())
    assert report.arch == arch, f"the guest reports architecture {report.arch!r}"
    assert IBM_Z_MACHINE.match(str(report.machine)), f"the guest reports machine {report.machine!r}"


@then(parsers.parse('the guest of pod "{name}" computed the {algorithm} digest of "{file_name}"'))
def guest_digest(env: Environment, world: World, name: str, algorithm: str, file_name: str) -> None:
    toml = pods.initdata_toml(file_name)
    assert tomllib.loads(toml.decode())["algorithm"] == algorithm, f"{file_name} does not name {algorithm}"
    report = need(env, PodVMs).guest_report(namespace_of(world, name), name)
    expected = hashlib.new(algorithm, toml).hexdigest()
    assert report.error is None, f"the guest refused the initdata: {report.error}"
    assert (report.algorithm, report.digest) == (algorithm, expected), (
        f"the guest computed {report.algorithm}:{report.digest}, expected {algorithm}:{expected}"
    )


@then(parsers.parse('the guest of pod "{name}" wrote "{path}"'))
def guest_wrote(env: Environment, world: World, name: str, path: str) -> None:
    report = need(env, PodVMs).guest_report(namespace_of(world, name), name)
    assert path in report.written, f"the guest wrote {sorted(report.written)}, not {path}"


@then(parsers.parse('the guest of pod "{name}" ignored "{key}" and wrote nothing outside /run/peerpod'))
def guest_ignored(env: Environment, world: World, name: str, key: str) -> None:
    report = need(env, PodVMs).guest_report(namespace_of(world, name), name)
    assert key in report.ignored, f"the guest ignored {report.ignored}, not {key!r}"
    outside = [p for p in report.written if not p.startswith(PEERPOD_DIR + "/") or ".." in p]
    assert not outside, f"the guest wrote outside {PEERPOD_DIR}: {outside}"
