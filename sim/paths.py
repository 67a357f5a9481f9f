"""The project's roots: where the features, steps, fixtures and Go modules are.

Every module that reads one of the project's own files finds it through here. In a checkout
they are the top-level folders (``features/``, ``steps/``, ``fixtures/``, ``controlplane/``,
``podvm-agent/``); an installed wheel ships them as package data inside ``sim`` (see
``[tool.setuptools]`` in pyproject.toml), found through :mod:`importlib.resources`, the
step modules as the package ``sim.steps``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = [
    "AGENT_DIR",
    "CHECKOUT",
    "CONTROLPLANE_DIR",
    "DATA_ROOT",
    "FEATURES_DIR",
    "FIXTURES_DIR",
    "PROJECT_ROOT",
    "STEPS_DIR",
    "STEPS_PACKAGE",
]

#: The checkout's root; in an installed wheel, the folder ``sim`` and ``steps`` are installed in.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: True when running from a checkout (editable install or not), False from an installed wheel.
CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "features").is_dir()


def _data_root() -> Path:
    """Where ``features/`` and ``fixtures/`` are: the checkout's root, else the installed package."""
    if CHECKOUT:
        return PROJECT_ROOT
    installed = files("sim") / "features"
    if not installed.is_dir():
        raise RuntimeError(f"{installed}: the installed package sim ships no features; reinstall it")
    return Path(str(files("sim")))


#: Holds ``features/``, ``fixtures/`` and ``controlplane/``; a feature's "fixtures/..." is relative to it.
DATA_ROOT = _data_root()
FEATURES_DIR = DATA_ROOT / "features"
FIXTURES_DIR = DATA_ROOT / "fixtures"
CONTROLPLANE_DIR = DATA_ROOT / "controlplane"
#: The pod VM agent's Go sources (``lpar prepare`` builds them).
AGENT_DIR = DATA_ROOT / ("podvm-agent" if CHECKOUT else "podvm_agent")
#: The step modules: the checkout's package ``steps``, or the installed wheel's ``sim.steps``
#: (they import each other relatively, so either name works).
STEPS_DIR = DATA_ROOT / "steps"
STEPS_PACKAGE = "steps" if CHECKOUT else "sim.steps"
