"""The ``adaptor`` target: the suite plays kubelet and the Kata shim; the adaptor is under test.

The run starts the adaptor of each worker node as a process -- the suite's reference
(``peerpods-conformance adaptor serve``) or a user's build of upstream's ``cloud-api-adaptor``
(``--adaptor-binary``) -- and calls it through its real API, the remote hypervisor's ttrpc
service. Both talk to one libvirt daemon (``--libvirt-uri``, default ``qemu:///system``):
the adaptor makes the pod VMs there, the suite reads them back.

Before any scenario the adaptor is started once and must answer ``Version``; a binary that is
not an adaptor, exits at start or never answers is refused there (exit 2). Only scenarios that
reach pod VMs are judged here: what the webhook, the scheduler or the node capacity decide is
the suite's own reference on this target, and is reported not applicable.
"""

from __future__ import annotations

from pathlib import Path

from sim.errors import ConformanceInputError
from sim.harness.targets.adaptor.environment import AdaptorEnvironment
from sim.harness.targets.adaptor.launcher import AdaptorLauncher
from sim.harness.targets.base import Target, TargetOptions
from sim.harness.targets.lparhost import LparHost
from sim.lpar import host
from sim.peerpods.adaptor import AdaptorStartError

__all__ = ["AdaptorTarget"]


class AdaptorTarget(LparHost, Target):
    """A cloud-api-adaptor process of the user's choice on a libvirt LPAR."""

    name = "adaptor"
    environment_class = AdaptorEnvironment
    #: A scenario is judged here only if it needs one of these: the pod VMs are the adaptor's.
    reaches = frozenset({"podvm", "guest"})

    def __init__(self, uri: str, *, binary: Path | None, cache: Path | None = None) -> None:
        self.launcher = AdaptorLauncher(binary, cache=cache)
        try:
            super().__init__(uri, cache=cache)
            if self.simulated:
                raise ConformanceInputError(
                    f"--libvirt-uri {uri}: the adaptor target needs a libvirt daemon that both the adaptor "
                    f"and the suite connect to ({host.SYSTEM_URI}); a test:/// driver lives in one process"
                )
            self.adaptor_version = self._probe_adaptor()
        except BaseException:
            self.launcher.close()
            raise

    @classmethod
    def from_options(cls, options: TargetOptions) -> AdaptorTarget:
        options.refuse("adaptor", "webhook_url", "webhook_ca", "webhook_config")
        binary = options.extra.get("adaptor_binary")
        cache = options.extra.get("lpar_cache")
        return cls(
            options.libvirt_uri or host.SYSTEM_URI,
            binary=Path(binary) if binary else None,
            cache=Path(cache) if cache else None,
        )

    def _probe_adaptor(self) -> str:
        """Start the adaptor once with the defaults: it must start and answer ``Version``."""
        what = (
            "--adaptor-binary " + str(self.launcher.binary)
            if self.launcher.binary
            else "the reference adaptor"
        )
        try:
            running = self.launcher.start(what, self.adaptor_overrides())
        except AdaptorStartError as exc:
            raise ConformanceInputError(f"{exc} (is it a cloud-api-adaptor?)") from None
        self.launcher.stop(running)
        if not running.version:
            raise ConformanceInputError(f"{what} answered Version with an empty version")
        return running.version

    def adaptor_overrides(self) -> dict[str, str]:
        """What every adaptor of this run is given whatever the deployment says: this LPAR."""
        return {"LIBVIRT_URI": self.uri}

    def pod_netns(self) -> str:
        """The pod network namespace the shim hands over in CreateVM (none yet: the host's)."""
        return ""

    def open_environment(self) -> AdaptorEnvironment:
        return AdaptorEnvironment(self)

    def identity(self) -> dict[str, str]:
        facts = super().identity()
        facts["implementation"] = "the cloud-api-adaptor under test, driven as the Kata shim drives it"
        facts.update(self.launcher.identity())
        facts["adaptor Version"] = self.adaptor_version
        facts["libvirt host architecture"] = str(self.connection.getInfo()[0])
        return facts

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.launcher.close()
