"""The README's table of which step files each feature uses is what the step definitions say.

Each step line of every feature (an outline's once per example) is matched against the
step definitions as pytest-bdd matches it; the step modules whose definitions match make
the feature's row.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from pytest_bdd.parser import FeatureParser, ScenarioTemplate
from pytest_bdd.steps import StepFunctionContext

from sim.paths import FEATURES_DIR

ROOT = Path(__file__).resolve().parents[2]
STEP_MODULES = ("world", "pod_steps", "config_steps", "webhook_steps", "podvm_steps", "lpar_steps")


def _contexts(module_name: str) -> list[StepFunctionContext]:
    """The step definitions a step module registers (pytest-bdd keeps each one's context in
    the closure of the fixture it injects into the module)."""
    module = importlib.import_module(f"steps.{module_name}")
    found = []
    for name, fixture in vars(module).items():
        if not name.startswith("pytestbdd_stepdef_"):
            continue
        function = fixture.__wrapped__
        cells = [cell.cell_contents for cell in function.__closure__ or ()]
        contexts = [c for c in cells if isinstance(c, StepFunctionContext)]
        assert contexts, f"pytest-bdd no longer keeps the step context of {name} where this test looks"
        found += contexts
    return found


def _steps(template: ScenarioTemplate) -> list[tuple[str, str]]:
    contexts = [context for examples in template.examples for context in examples.as_contexts()] or [{}]
    return [(step.type, step.name) for context in contexts for step in template.render(context).steps]


def used_step_files() -> dict[str, list[str]]:
    definitions = [(module, context) for module in STEP_MODULES for context in _contexts(module)]
    table: dict[str, list[str]] = {}
    for path in sorted(FEATURES_DIR.glob("*.feature")):
        feature = FeatureParser(str(FEATURES_DIR), path.name).parse()
        used: set[str] = set()
        for template in feature.scenarios.values():
            for kind, text in _steps(template):
                matches = {m for m, c in definitions if c.type == kind and c.parser.is_matching(text)}
                assert matches, f"{path.name}: no step definition for {kind} {text!r}"
                used |= matches
        table[path.stem] = [m for m in STEP_MODULES if m in used]
    return table


def readme_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| ([a-z_]+) \| ([a-z_, ]+) \|$", text, flags=re.MULTILINE)
    return {
        feature: [m.strip() for m in modules.split(",")] for feature, modules in rows if feature != "feature"
    }


def test_the_readme_says_which_step_files_each_feature_uses() -> None:
    assert readme_table() == used_step_files()


def test_the_checker_matches_as_pytest_bdd_does() -> None:
    """A line is matched by its own definition only (the table could not fail otherwise)."""
    definitions = [(m, c) for m in STEP_MODULES for c in _contexts(m)]
    assert len(definitions) > 100
    line = 'peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "2"'
    assert {m for m, c in definitions if c.type == "given" and c.parser.is_matching(line)} == {"config_steps"}
    assert not any(c.parser.is_matching("a step no feature has") for _, c in definitions)
