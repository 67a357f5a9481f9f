"""What the suite checks, read from the catalogue and the feature files, without running anything.

``peerpods-conformance list`` prints it: the requirements, the tags the scenarios carry, every
scenario, and -- for a ``--target`` -- which scenarios that target can answer and why not the
others. A target's answer here comes from its class (the capabilities its environments
implement, the part of the system it reaches); a run may still find a scenario not applicable
when a step asks its target something this run's options do not offer.
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from sim.errors import ConformanceInputError
from sim.harness.catalogue import Catalogue, ScenarioRef, requirement_tags
from sim.harness.needs import missing_part, require_target
from sim.harness.targets import TARGETS
from sim.harness.targets.base import CAPABILITIES, Target, provided_by

NEEDS_PREFIX = "needs-"


@dataclass(frozen=True)
class ListedScenario:
    feature: str
    scenario: str
    requirements: list[str]
    needs: list[str]
    tags: list[str]
    #: On the chosen target: True, or False with ``why``; None when no target was chosen.
    answerable: bool | None = None
    why: str | None = None


@dataclass(frozen=True)
class TargetAnswer:
    """What a target's class can answer."""

    name: str
    capabilities: list[str]
    reaches: list[str] | None

    def judge(self, needs: list[str]) -> str | None:
        """None when a scenario needing ``needs`` is answerable here, else why not."""
        if self.reaches is not None and not set(self.reaches) & set(needs):
            return f"does not reach the system under test (needs none of {', '.join(self.reaches)})"
        lacking = [need for need in needs if need not in self.capabilities]
        return f"lacks {', '.join(lacking)}" if lacking else None


def target_answer(name: str) -> TargetAnswer:
    """The capabilities of a target's class; its extra must be installed (exit 2 otherwise)."""
    if name not in TARGETS:
        raise ConformanceInputError(
            f"--target {name!r}: unknown (known targets: {', '.join(sorted(TARGETS))})"
        )
    require_target(name)
    module_name, class_name = TARGETS[name].split(":")
    try:
        cls: type[Target] = getattr(importlib.import_module(module_name), class_name)
    except ModuleNotFoundError as exc:
        error = missing_part(f"--target {name}", exc.name or "")
        if error is None:
            raise
        raise error from exc
    reaches = sorted(cls.reaches) if cls.reaches is not None else None
    return TargetAnswer(name, sorted(provided_by(cls.environment_class)), reaches)


def listing(catalogue: Catalogue, scenarios: list[ScenarioRef], target: str | None) -> dict[str, Any]:
    """Requirements, tags and scenarios (with the target's answer, if one is named), as plain data."""
    answer = target_answer(target) if target else None
    listed: list[ListedScenario] = []
    for ref in scenarios:
        needs = sorted(tag[len(NEEDS_PREFIX) :] for tag in ref.tags if tag.startswith(NEEDS_PREFIX))
        why = answer.judge(needs) if answer else None
        listed.append(
            ListedScenario(
                feature=ref.feature,
                scenario=ref.scenario,
                requirements=requirement_tags(ref.tags),
                needs=needs,
                tags=sorted(ref.tags),
                answerable=(why is None) if answer else None,
                why=why,
            )
        )
    per_requirement = Counter(r for s in listed for r in s.requirements)
    per_tag = Counter(t for s in listed for t in s.tags)
    return {
        "requirements": [
            {
                "id": r.id,
                "level": r.level,
                "text": r.text,
                "source": r.source,
                "scenarios": per_requirement[r.id],
            }
            for r in catalogue.requirements
        ],
        "tags": [
            {"tag": tag, "scenarios": count, "meaning": _meaning(tag, catalogue)}
            for tag, count in sorted(per_tag.items())
        ],
        "scenarios": [asdict(s) for s in listed],
        "target": asdict(answer) if answer else None,
    }


def _meaning(tag: str, catalogue: Catalogue) -> str:
    if tag in catalogue.by_id:
        return f"requirement ({catalogue.by_id[tag].level})"
    if tag.startswith(NEEDS_PREFIX):
        return f"needs {CAPABILITIES.get(tag[len(NEEDS_PREFIX) :], tag[len(NEEDS_PREFIX) :])}"
    return "tag"
