"""The ``adaptor`` target: the suite plays kubelet and the Kata shim; the adaptor is under test.

The run starts the adaptor of each worker node as a process on an LPAR
(:class:`~sim.harness.targets.adaptorprocess.host.AdaptorHost`: the suite's reference or a user's
build, in the run's own isolated LPAR or beside the suite on ``--libvirt-uri``) and calls it
through its real API, the remote hypervisor's ttrpc service. Only scenarios that reach pod VMs
are judged here: what the webhook, the scheduler or the node capacity decide is the suite's own
reference on this target, and is reported not applicable.
"""

from __future__ import annotations

from pathlib import Path

from sim.harness.targets.adaptor.environment import AdaptorEnvironment
from sim.harness.targets.adaptorprocess.host import AdaptorHost
from sim.harness.targets.base import Target, TargetOptions, provided_by

__all__ = ["AdaptorTarget"]


class AdaptorTarget(AdaptorHost, Target):
    """A cloud-api-adaptor process of the user's choice on a libvirt LPAR."""

    name = "adaptor"
    environment_class = AdaptorEnvironment
    #: A scenario is judged here only if it needs one of these: the pod VMs are the adaptor's.
    reaches = frozenset({"podvm", "guest"})

    @property
    def capabilities(self) -> frozenset[str]:
        """Every capability of its environment; the pod VMs' own network only in the run's LPAR
        (beside the suite on a given libvirt, that libvirt's network is not entered)."""
        offered = provided_by(self.environment_class)
        return offered if self.isolated is not None else offered - {"podvm-network"}

    @classmethod
    def from_options(cls, options: TargetOptions) -> AdaptorTarget:
        options.refuse("adaptor", "webhook_url", "webhook_ca", "webhook_config")
        binary = options.extra.get("adaptor_binary")
        cache = options.extra.get("lpar_cache")
        return cls(
            options.libvirt_uri,
            binary=Path(binary) if binary else None,
            cache=Path(cache) if cache else None,
            lpar_host=options.extra.get("lpar_host") or "ibmz",
        )

    def open_environment(self) -> AdaptorEnvironment:
        return AdaptorEnvironment(self)

    def identity(self) -> dict[str, str]:
        facts = super().identity()
        facts["implementation"] = "the cloud-api-adaptor under test, driven as the Kata shim drives it"
        return facts
