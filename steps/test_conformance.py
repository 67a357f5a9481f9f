"""Collects every scenario in features/ as a test; the step definitions live beside it."""

from pytest_bdd import scenarios

from sim.paths import FEATURES_DIR

scenarios(str(FEATURES_DIR))
