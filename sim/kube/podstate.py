"""A pod the in-process API server stores, and what became of it (its phase, node, pod VM)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PodState"]


@dataclass
class PodState:
    """A stored pod and what became of it. ``reason`` explains Pending (unschedulable, or a
    sandbox that did not start) and Failed (the kubelet's admission refused it)."""

    pod: dict[str, Any]
    phase: str  # "Pending" | "Running" | "Failed"
    node: str | None = None
    reason: str | None = None
    vm: str | None = None
