"""Steps about the LPAR (the KVM host pod VMs run on): its prerequisites, on a described LPAR
or the target's own."""

from __future__ import annotations

from pathlib import Path

from pytest_bdd import given, parsers, then, when

from sim.harness.targets.base import (
    Environment,
    LparCheck,
    LparInspection,
    NotApplicable,
    Target,
    need,
)

from .expect import (
    verdict,
)


@given(parsers.parse('the LPAR described in "{path}"'), target_fixture="lpar_description")
def described_lpar(path: str) -> Path | None:
    return Path(path)


@given("the target's own LPAR", target_fixture="lpar_description")
def own_lpar() -> Path | None:
    return None


@when("its LPAR prerequisites are checked", target_fixture="lpar_verdicts")
def check_lpar(env: Environment, lpar_description: Path | None) -> list[LparCheck]:
    return need(env, LparInspection).lpar_checks(lpar_description)


@then("every LPAR prerequisite is satisfied")
def all_satisfied(lpar_verdicts: list[LparCheck]) -> None:
    failed = [f"{check.name}: {check.detail}" for check in lpar_verdicts if not check.satisfied]
    assert lpar_verdicts and not failed, f"unsatisfied prerequisites: {failed}"


@then(parsers.parse('the "{name}" prerequisite is satisfied'))
def satisfied(lpar_verdicts: list[LparCheck], name: str) -> None:
    check = verdict(lpar_verdicts, name)
    assert check.satisfied, f"{name} is not satisfied: {check.detail}"


@then(parsers.parse('the "{name}" prerequisite fails mentioning "{text}"'))
def fails(lpar_verdicts: list[LparCheck], name: str, text: str) -> None:
    check = verdict(lpar_verdicts, name)
    assert not check.satisfied, f"{name} is satisfied ({check.detail}), but it must fail"
    assert text in check.detail, f"the verdict on {name} does not mention {text!r}: {check.detail}"


@then("the target names what the emulated LPAR cannot show")
def names_limits(target: Target) -> None:
    limits = target.identity().get("emulated LPAR limits")
    if limits is None:
        raise NotApplicable("the target's LPAR is not emulated")
    for point in ("8561", "Secure Execution"):
        assert point in limits, f"the stated limits do not mention {point!r}: {limits}"
