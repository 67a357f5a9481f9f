"""The world of a scenario: what it drafted and submitted, how it submits a pod and reads the
current one back, and the step language's parameter types (:func:`step`).

The state of one scenario lives in :class:`World`; the target's answers come back as
:class:`~sim.harness.targets.base.PodOutcome` objects, passed on with ``target_fixture``.
Every step module and :mod:`expect` import from here; this module imports no step module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from pytest_bdd import parsers

from sim.harness.targets.base import (
    Environment,
    PodOutcome,
)

from . import pods
from .pods import Pod


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


def current_outcome(env: Environment, world: World) -> PodOutcome:
    """The latest state of the pod the scenario talks about."""
    return env.get_pod(*world.pod())
