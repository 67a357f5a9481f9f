"""Collects every scenario in features/ as a test; the step definitions live beside it."""

from pytest_bdd import scenarios

scenarios("../features")
