"""The ``reference`` target: the suite's own full implementation of peer pods, in process.

Its environment is :class:`sim.harness.targets.inprocess.InProcessEnvironment` (the in-process
cluster) with the in-memory pod VM provider.
"""

from __future__ import annotations

from sim import __version__
from sim.errors import ConformanceInputError
from sim.harness.targets.base import Target, TargetOptions
from sim.harness.targets.inprocess import InProcessEnvironment
from sim.peerpods.providers.memory import MemoryProvider


class ReferenceTarget(Target):
    """The embedded reference implementation; answers every scenario but real guests and LPARs."""

    name = "reference"
    environment_class = InProcessEnvironment

    @classmethod
    def from_options(cls, options: TargetOptions) -> ReferenceTarget:
        unused = [
            name
            for name in ("libvirt_uri", "webhook_url", "webhook_ca", "webhook_config")
            if getattr(options, name)
        ]
        if options.extra.get("profile"):
            unused.append("profile")
        if unused:
            raise ConformanceInputError(
                f"the reference target takes no {', '.join('--' + n.replace('_', '-') for n in unused)}"
            )
        return cls()

    def identity(self) -> dict[str, str]:
        return {
            "implementation": "peerpods-conformance reference implementation (in process)",
            "version": __version__,
            "pod VM provider": "in-memory (reference pod VM logic on real files)",
        }

    def open_environment(self) -> InProcessEnvironment:
        return InProcessEnvironment(MemoryProvider())
