"""pytest wiring for the conformance features: target selection, environments, applicability.

Loaded as a plugin: by ``peerpods-conformance run`` (``-p sim.harness.pytest_plugin``), and by the
checkout's ``conftest.py`` for ``pytest steps --target ...``. The features run through
``steps/test_conformance.py``; the step modules (``steps/world.py`` and every
``steps/*_steps.py``) are loaded here once, as plugins, so each step text is defined in
exactly one place.

The target is built once per run. ``peerpods-conformance run`` builds it (bad options fail
before pytest starts, exit 2) and hands it in through :class:`PresetTarget`, which puts it in
``config.stash``; when pytest runs directly, the ``target`` fixture builds it from the options
declared in :mod:`sim.harness.targets.options`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import pytest

from sim.harness.catalogue import load_catalogue, requirement_tags
from sim.harness.distributed import (
    EACH_LPAR,
    FACTS_STASH,
    LparScheduling,
    WorkerRecorder,
    bound_lpar,
    lpar_param_id,
    worker_id,
    worker_number,
)
from sim.harness.report.results import (
    CURRENT_LPAR,
    LPAR_PARAM,
    NOT_APPLICABLE,
    NOT_APPLICABLE_KEY,
    NotApplicableMark,
    is_scenario,
)
from sim.harness.targets import create_target
from sim.harness.targets.base import CAPABILITIES, Environment, Lacking, NotApplicable, Target
from sim.harness.targets.bootconcurrency import SHARE_ENV
from sim.harness.targets.options import add_pytest_options, repeated, target_options
from sim.lpar.ownership import RUN_ID_ENV
from sim.paths import CHECKOUT, STEPS_DIR, STEPS_PACKAGE

if CHECKOUT and find_spec("steps") is None:  # the checkout's steps/ folder, wherever the run starts
    sys.path.insert(0, str(STEPS_DIR.parent))
pytest_plugins = [
    f"{STEPS_PACKAGE}.world",
    *sorted(f"{STEPS_PACKAGE}.{p.stem}" for p in STEPS_DIR.glob("*_steps.py")),
]

NEEDS_PREFIX = "needs-"
#: The tag of a SHOULD scenario that upstream (CAA v0.22.0) fails, and with it the reference,
#: which follows upstream. ``peerpods-conformance run`` reports its failure as the advisory it
#: is; a plain ``pytest steps`` run (the suite's own tests) expects it to fail.
UPSTREAM_DEFECT = "upstream-defect"


@dataclass(frozen=True)
class ChosenTarget:
    """The run's system under test and the name it was chosen by."""

    name: str
    target: Target


#: The run's target, when the caller built it (``peerpods-conformance run``).
TARGET_KEY = pytest.StashKey[ChosenTarget]()


class PresetTarget:
    """pytest plugin: the caller built the target; the session uses it and leaves closing it to the caller."""

    def __init__(self, name: str, target: Target) -> None:
        self.chosen = ChosenTarget(name, target)

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[TARGET_KEY] = self.chosen


def target_name(config: pytest.Config) -> str:
    """The name of the run's target."""
    chosen = config.stash.get(TARGET_KEY, None)
    return chosen.name if chosen is not None else str(config.getoption("target"))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("peerpods", "peerpods-conformance target selection")
    add_pytest_options(group)
    group.addoption(
        "--peerpods-run-id",
        default=None,
        help="set by `peerpods-conformance run --workers` for its pytest-xdist workers: their run",
    )


def under_run(config: pytest.Config) -> bool:
    """This session is (a worker of) ``peerpods-conformance run``, not a plain ``pytest steps``."""
    return TARGET_KEY in config.stash or bool(config.getoption("peerpods_run_id", None))


def pytest_configure(config: pytest.Config) -> None:
    """Register every requirement id and capability tag as a marker, so typos fail loudly."""
    for requirement in load_catalogue().requirements:
        config.addinivalue_line("markers", f"{requirement.id}: {requirement.text}")
    for capability, meaning in CAPABILITIES.items():
        config.addinivalue_line("markers", f"{NEEDS_PREFIX}{capability}: scenario needs {meaning}")
    config.addinivalue_line(
        "markers", f"{UPSTREAM_DEFECT}: a SHOULD scenario upstream fails (see {__name__})"
    )
    config.addinivalue_line(
        "markers", f"{EACH_LPAR}: a scenario that judges the LPAR itself; runs once on each of several LPARs"
    )
    run_id = config.getoption("peerpods_run_id", None)
    if run_id and worker_id(config) is not None:  # a worker of `run --workers`: results go back on reports
        os.environ[RUN_ID_ENV] = str(run_id)
        config.pluginmanager.register(WorkerRecorder(), "peerpods-worker-recorder")
    lpars = repeated(config.getoption, "libvirt-uri")
    if len(lpars) > 1:  # several LPARs: this process is bound to one, and its scenarios name it
        CURRENT_LPAR["uri"] = bound_lpar(worker_id(config), lpars)
    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    if workerinput is not None:  # the workers bound to this worker's LPAR share its cores' boots
        count, mine = int(workerinput.get("workercount", 1)), worker_index(config) % max(1, len(lpars))
        os.environ[SHARE_ENV] = str(sum(1 for i in range(count) if i % max(1, len(lpars)) == mine))


def worker_index(config: pytest.Config) -> int:
    """The xdist worker's number (gw3: 3), which picks its LPAR among several; 0 when serial."""
    return worker_number(worker_id(config))


def several_lpars(config: pytest.Config) -> list[str]:
    """The LPARs of a worker of a run over several (``--libvirt-uri`` more than once), else none."""
    lpars = repeated(config.getoption, "libvirt-uri")
    return lpars if len(lpars) > 1 and worker_id(config) is not None else []


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Iterator[Target]:
    """The system under test: the caller's, or built once per session from the command-line options.

    A worker on an LPAR keeps its target's per-LPAR facts before closing it (as they are at the
    end: the boot concurrency chosen at the first boot); they go back with its workeroutput."""
    chosen = pytestconfig.stash.get(TARGET_KEY, None)
    if chosen is not None:
        yield chosen.target
        return
    options = target_options(pytestconfig.getoption, worker_index(pytestconfig))
    built = create_target(pytestconfig.getoption("target"), options)
    try:
        yield built
        lpars = repeated(pytestconfig.getoption, "libvirt-uri")
        if worker_id(pytestconfig) is not None and lpars and built.per_lpar_facts:
            pytestconfig.stash[FACTS_STASH] = (CURRENT_LPAR["uri"] or lpars[0], lpar_facts(built))
    finally:
        built.close()


def lpar_facts(built: Target) -> dict[str, str]:
    """The target's facts that belong to its LPAR. Report metadata: a failure to get them (the
    LPAR's libvirt gone at the end) is reported in their place, and fails no scenario."""
    try:
        facts = built.identity()
    except Exception as exc:  # whatever the target's identity raised: named in the report instead
        return {"facts": f"not reported: {type(exc).__name__}: {exc}"}
    return {key: value for key, value in facts.items() if key in built.per_lpar_facts}


@pytest.fixture(autouse=True)
def peerpods_lpar(request: pytest.FixtureRequest) -> str | None:
    """The LPAR an ``@each-lpar`` scenario's instance is for (None for every other test).

    It must be the LPAR this worker is bound to (:class:`LparScheduling` sees to it under
    ``--dist load``); an instance that reached another LPAR's worker fails, naming both."""
    uri: str | None = getattr(request, "param", None)
    if uri is not None and uri != CURRENT_LPAR["uri"]:
        pytest.fail(
            f"this instance is for LPAR {uri}, but worker {worker_id(request.config)} is bound to "
            f"{CURRENT_LPAR['uri']}: several LPARs need pytest-xdist's --dist load (the default)",
            pytrace=False,
        )
    return uri


@pytest.hookimpl(trylast=True)
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With several LPARs, a scenario that judges the LPAR itself (``@each-lpar``) becomes one
    instance per LPAR (ids lpar1, lpar2, ... in ``--libvirt-uri`` order)."""
    lpars = several_lpars(metafunc.config)
    if lpars and metafunc.definition.get_closest_marker(EACH_LPAR) is not None:
        ids = [lpar_param_id(index) for index in range(len(lpars))]
        metafunc.parametrize(LPAR_PARAM, lpars, ids=ids, indirect=True)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LparScheduling | None:
    """pytest-xdist's hook: with several LPARs, its ``load`` scheduling that keeps each
    ``@each-lpar`` instance to its LPAR's workers; otherwise xdist's own choice."""
    lpars = repeated(config.getoption, "libvirt-uri")
    if len(lpars) > 1 and config.getvalue("dist") == "load":
        return LparScheduling(config, log, lpars)
    return None


@pytest.fixture
def env(target: Target) -> Iterator[Environment]:
    """One scenario's environment: set up before the steps, torn down after them."""
    environment = target.open_environment()
    yield environment
    environment.close()


def required_capabilities(item: pytest.Item) -> list[str]:
    """The capabilities a scenario declares with ``@needs-<capability>`` tags."""
    return sorted(
        mark.name[len(NEEDS_PREFIX) :] for mark in item.iter_markers() if mark.name.startswith(NEEDS_PREFIX)
    )


@pytest.hookimpl(trylast=True)
def pytest_bdd_before_scenario(request: pytest.FixtureRequest) -> None:
    """Report a scenario as not applicable, before any step runs, when the target lacks a capability.

    Checked in pytest-bdd's public hook rather than a fixture, so the scenario (its feature,
    its steps) is known to the report even when none of its steps runs.
    """
    needed = required_capabilities(request.node)
    built: Target = request.getfixturevalue("target")
    if built.reaches is not None and not built.reaches.intersection(needed):
        reason = built.why_unreached()
        request.node.stash[NOT_APPLICABLE_KEY] = NotApplicableMark(reason, sorted(built.reaches)[0])
        pytest.skip(reason)
    for capability in needed:
        if capability not in built.capabilities:
            reason = built.why_not(capability)
            request.node.stash[NOT_APPLICABLE_KEY] = NotApplicableMark(reason, capability)
            pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A step that asks the target something it cannot answer makes the scenario not applicable."""
    try:
        return (yield)
    except Lacking as exc:  # a step needed an interface the target's environment lacks
        reason = f"not applicable on target {target_name(item.config)!r}: {exc}"
        item.stash[NOT_APPLICABLE_KEY] = NotApplicableMark(reason, exc.capability)
        pytest.skip(reason)
    except NotApplicable as exc:
        reason = f"not applicable: {exc}"
        item.stash[NOT_APPLICABLE_KEY] = NotApplicableMark(reason)
        pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each scenario's requirement ids become JUnit properties (``requirement``), one per id.

    Outside ``peerpods-conformance run`` an upstream defect's scenario is an expected failure
    (not strict: a target that does better than upstream passes it); under ``run``, which
    presets the target, it runs plainly, so that its failure reaches the report as an advisory.
    """
    preset = under_run(config)
    for item in items:
        if is_scenario(item):
            for requirement_id in requirement_tags(mark.name for mark in item.iter_markers()):
                item.user_properties.append(("requirement", requirement_id))
        if not preset and item.get_closest_marker(UPSTREAM_DEFECT) is not None:
            item.add_marker(
                pytest.mark.xfail(reason="a SHOULD that upstream fails, as the reference does", strict=False)
            )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Carry the not-applicable mark from the item's stash onto its report, for the status line."""
    report = yield
    if report.skipped and NOT_APPLICABLE_KEY in item.stash:
        report.peerpods_not_applicable = True  # type: ignore[attr-defined]
    return report


def pytest_report_teststatus(report: pytest.TestReport) -> tuple[str, str, str] | None:
    """pytest's own summary uses the suite's words: "23 not applicable", never "23 skipped"."""
    if getattr(report, "peerpods_not_applicable", False):
        return NOT_APPLICABLE, "n", "NOT APPLICABLE"
    return None
