"""The systems under test, each behind :class:`sim.harness.targets.base.Target`.

Targets are found by name here, and imported only when chosen, so that a run on the
reference target never needs libvirt or a TLS stack installed.
"""

from __future__ import annotations

import importlib

from sim.errors import ConformanceInputError
from sim.harness.needs import missing_part, require_target
from sim.harness.targets.base import Target, TargetOptions

#: name -> "module:class"
TARGETS: dict[str, str] = {
    "reference": "sim.harness.targets.reference:ReferenceTarget",
    "webhook": "sim.harness.targets.webhook:WebhookTarget",
    "lpar": "sim.harness.targets.lpar:LparTarget",
    "cluster": "sim.harness.targets.cluster:ClusterTarget",
    "adaptor": "sim.harness.targets.adaptor:AdaptorTarget",
}


def create_target(name: str, options: TargetOptions) -> Target:
    """Build the named target from the user's options."""
    try:
        module_name, class_name = TARGETS[name].split(":")
    except KeyError:
        known = ", ".join(sorted(TARGETS))
        raise ConformanceInputError(f"unknown target {name!r} (known targets: {known})") from None
    require_target(name, options.libvirt_uri)
    try:
        cls: type[Target] = getattr(importlib.import_module(module_name), class_name)
        return cls.from_options(options)
    except ModuleNotFoundError as exc:
        error = missing_part(f"--target {name}", exc.name or "")
        if error is None:
            raise
        raise error from exc
