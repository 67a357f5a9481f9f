"""The folders of ``sim/`` are layers: a module imports only from its own layer or the ones below.

The order is the README's Architecture section: the shared basics, the emulated LPAR, the
reference peer pods components, the reference Kubernetes that hosts them, the webhook server,
and the harness. Besides, no target imports another target.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SIM = Path(__file__).resolve().parents[2] / "sim"

# bottom-up; "" is the package's own top-level modules (errors, bounds, paths, ...)
LAYERS = ["", "lpar", "peerpods", "kube", "server", "harness"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(SIM.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sim_imports(path: Path) -> set[str]:
    """The ``sim.*`` modules (or packages) a file imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "sim")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "sim":
            if node.module == "sim":
                found.update(f"sim.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
    return found


def _layer(module: str) -> str:
    if module == "sim.__main__":  # `python -m sim` is the command line: the top
        return "harness"
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in LAYERS:
        return parts[1]
    if len(parts) == 2 and parts[1] in LAYERS:  # a layer's package itself
        return parts[1]
    return ""


MODULES = {_module_name(p): p for p in sorted(SIM.rglob("*.py"))}


def test_every_module_is_in_a_layer() -> None:
    stray = [m for m in MODULES if m.count(".") >= 2 and m.split(".")[1] not in LAYERS]
    assert not stray, f"modules in a folder that is not a layer: {stray}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_its_layer_or_below(module: str) -> None:
    own = LAYERS.index(_layer(module))
    upward = sorted(
        imported for imported in _sim_imports(MODULES[module]) if LAYERS.index(_layer(imported)) > own
    )
    assert not upward, f"{module} ({_layer(module) or 'sim'}) imports from a later layer: {upward}"


def _target_of(module: str) -> str:
    """The target a module of ``sim.harness.targets`` belongs to: its own name, or its package's."""
    return module.split(".")[3]


def test_no_target_imports_another_target() -> None:
    # what several targets are built from
    shared = {"base", "options", "inprocess", "lparhost", "deployment", "adaptorprocess"}
    modules = [m for m in MODULES if m.startswith("sim.harness.targets.")]
    targets = {_target_of(m) for m in modules} - shared
    assert targets >= {"reference", "webhook", "lpar", "cluster"}
    for module in sorted(m for m in modules if _target_of(m) in targets):
        sideways = sorted(
            imported
            for imported in _sim_imports(MODULES[module])
            if imported.startswith("sim.harness.targets.")
            and len(imported.split(".")) > 3
            and _target_of(imported) in targets - {_target_of(module)}
        )
        assert not sideways, f"{module} imports another target: {sideways}"


@pytest.mark.parametrize("module", sorted(set(MODULES) - {"sim.__main__"}))  # that one runs the CLI
def test_every_module_imports(module: str) -> None:
    """Moving code between modules can leave a name behind that only an import finds."""
    if module.startswith("sim.peerpods.providers.libvirt") or module == "sim.harness.targets.lpar":
        pytest.importorskip("libvirt")
    importlib.import_module(module)


def test_the_layering_test_sees_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an upward import is found (a test that cannot fail proves nothing)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from sim.harness.catalogue import load_catalogue\nfrom sim import errors\n")
    imported = _sim_imports(bad)
    assert imported == {"sim.harness.catalogue", "sim.errors"}
    assert LAYERS.index(_layer("sim.harness.catalogue")) > LAYERS.index(_layer("sim.peerpods.webhook"))
