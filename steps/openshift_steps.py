"""Steps of features/openshift.feature (steps it shares with other features are in common.py)."""

from __future__ import annotations

from pytest_bdd import given

from sim.harness.targets.base import (
    AdaptorProcess,
    Environment,
    need,
)

from .common import (
    World,
    step,
)


@given('peer pods are deployed as in the "openshift" profile')
def openshift_deployment(env: Environment) -> None:
    env.use_deployment_profile("openshift")


@given(step('peer-pods-secret sets {key:w} to "{value:Text}"'))
def secret_sets(env: Environment, world: World, key: str, value: str) -> None:
    world.peer_pods_secret[key] = value
    need(env, AdaptorProcess).set_peer_pods_secret(world.peer_pods_secret)
