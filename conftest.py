"""pytest wiring for the conformance features: target selection, environments, applicability.

The features in ``features/`` run through ``steps/test_conformance.py``; the step modules
(``steps/common.py`` and every ``steps/*_steps.py``) are loaded here once, as plugins, so
each step text is defined in exactly one place.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from sim.catalogue import load_catalogue, requirement_tags
from sim.report.results import NOT_APPLICABLE, NOT_APPLICABLE_KEY, NotApplicableMark, is_scenario
from sim.targets import TARGETS, create_target
from sim.targets.base import CAPABILITIES, Environment, Lacking, NotApplicable, Target, TargetOptions

ROOT = Path(__file__).parent
pytest_plugins = ["steps.common", *sorted(f"steps.{p.stem}" for p in (ROOT / "steps").glob("*_steps.py"))]

NEEDS_PREFIX = "needs-"
#: Target options that travel in ``TargetOptions.extra``.
EXTRA_OPTIONS = ("profile", "cluster", "kubeconfig", "context")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("peerpods", "peerpods-conformance target selection")
    group.addoption("--target", default="reference", choices=sorted(TARGETS), help="system under test")
    group.addoption("--libvirt-uri", default=None, help="libvirt URI for the lpar target")
    group.addoption("--webhook-url", default=None, help="AdmissionReview endpoint for the webhook target")
    group.addoption(
        "--webhook-ca", default=None, help="CA bundle (PEM) that signed the webhook's certificate"
    )
    group.addoption(
        "--webhook-config", default=None, help="MutatingWebhookConfiguration YAML the webhook target applies"
    )
    group.addoption(
        "--profile", default=None, help="profile of --webhook-config (caa-chart, openshift); default detected"
    )
    group.addoption("--cluster", default=None, help="cluster target: local, kind or k3s")
    group.addoption("--kubeconfig", default=None, help="cluster target: the kubeconfig of the cluster")
    group.addoption("--context", default=None, help="cluster target: the kubeconfig context")


def pytest_configure(config: pytest.Config) -> None:
    """Register every requirement id and capability tag as a marker, so typos fail loudly."""
    for requirement in load_catalogue().requirements:
        config.addinivalue_line("markers", f"{requirement.id}: {requirement.text}")
    for capability, meaning in CAPABILITIES.items():
        config.addinivalue_line("markers", f"{NEEDS_PREFIX}{capability}: scenario needs {meaning}")


def _path_option(config: pytest.Config, name: str) -> Path | None:
    value = config.getoption(name)
    return Path(value) if value else None


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Iterator[Target]:
    """The system under test, built once per run from the command-line options."""
    options = TargetOptions(
        libvirt_uri=pytestconfig.getoption("libvirt_uri"),
        webhook_url=pytestconfig.getoption("webhook_url"),
        webhook_ca=_path_option(pytestconfig, "webhook_ca"),
        webhook_config=_path_option(pytestconfig, "webhook_config"),
        extra={k: v for k in EXTRA_OPTIONS if (v := pytestconfig.getoption(k))},
    )
    built = create_target(pytestconfig.getoption("target"), options)
    yield built
    built.close()


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
    if not needed:
        return
    built: Target = request.getfixturevalue("target")
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
        reason = f"not applicable on target {item.config.getoption('target')!r}: {exc}"
        item.stash[NOT_APPLICABLE_KEY] = NotApplicableMark(reason, exc.capability)
        pytest.skip(reason)
    except NotApplicable as exc:
        reason = f"not applicable: {exc}"
        item.stash[NOT_APPLICABLE_KEY] = NotApplicableMark(reason)
        pytest.skip(reason)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each scenario's requirement ids become JUnit properties (``requirement``), one per id."""
    for item in items:
        if is_scenario(item):
            for requirement_id in requirement_tags(mark.name for mark in item.iter_markers()):
                item.user_properties.append(("requirement", requirement_id))


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
