"""Deliberately broken variants of the reference implementation, for proving the features can fail.

Loaded only by ``tests/integration/test_features_catch_faults.py`` as a pytest plugin
(``-p tests.mutants``) with ``PEERPODS_MUTANT`` naming one mutant. Each mutant is a
plausible implementation bug; the suite must fail the requirement it breaks.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from typing import Any

import pytest

import sim.adaptor
import sim.admission
from sim import initdata


def _webhook_blind_to_init_containers() -> None:
    """A webhook that forgets init containers when it sums resources."""
    original = sim.admission.review_response

    def blind(review: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        stripped = copy.deepcopy(review)
        pod = (stripped.get("request") or {}).get("object") or {}
        for container in (pod.get("spec") or {}).get("initContainers") or []:
            container.pop("resources", None)
        return original(stripped, *args, **kwargs)

    sim.admission.review_response = blind


def _config_map_beats_annotation() -> None:
    """Initdata precedence the wrong way round: peer-pods-cm INITDATA wins over the annotation."""

    def reversed_select(annotations: Mapping[str, str] | None, cm: Mapping[str, str] | None) -> str | None:
        return (cm or {}).get("INITDATA") or (annotations or {}).get(initdata.ANNOTATION) or None

    sim.adaptor.initdata = type("Reversed", (), {"select": staticmethod(reversed_select)})  # type: ignore[assignment]


def _adaptor_ignores_limit() -> None:
    """An adaptor that always advertises the default 10, whatever PEERPODS_LIMIT_PER_NODE says."""
    original = sim.adaptor.CloudApiAdaptor.start

    def fixed(self: sim.adaptor.CloudApiAdaptor, cm: Mapping[str, str] | None) -> int | None:
        original(self, cm)
        return 10

    sim.adaptor.CloudApiAdaptor.start = fixed  # type: ignore[method-assign]


MUTANTS: dict[str, Callable[[], None]] = {
    "webhook-blind-to-init-containers": _webhook_blind_to_init_containers,
    "config-map-beats-annotation": _config_map_beats_annotation,
    "adaptor-ignores-limit": _adaptor_ignores_limit,
}


def pytest_configure(config: pytest.Config) -> None:
    name = os.environ.get("PEERPODS_MUTANT", "")
    if name not in MUTANTS:
        raise pytest.UsageError(f"PEERPODS_MUTANT={name!r}: expected one of {', '.join(MUTANTS)}")
    MUTANTS[name]()
