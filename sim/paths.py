"""The project's roots: where the features, fixtures and Go modules of this checkout are.

Every module that reads one of the project's own files finds it through here.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CONTROLPLANE_DIR", "FEATURES_DIR", "FIXTURES_DIR", "PROJECT_ROOT", "STEPS_DIR"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
FEATURES_DIR = PROJECT_ROOT / "features"
FIXTURES_DIR = PROJECT_ROOT / "fixtures"
CONTROLPLANE_DIR = PROJECT_ROOT / "controlplane"
STEPS_DIR = PROJECT_ROOT / "steps"
