"""Adaptor processes on an LPAR: where the ``adaptor`` target and the cluster target run them.

:class:`AdaptorHost` is an LPAR (:class:`~sim.harness.targets.lparhost.LparHost`) whose
cloud-api-adaptors are processes of the kind under test -- the suite's reference
(``peerpods-conformance adaptor serve``) or a user's build of upstream's ``cloud-api-adaptor``
(``--adaptor-binary``) -- which the suite calls through their real API, the remote
hypervisor's ttrpc service. Both talk to one libvirt daemon: the adaptor makes the pod VMs
there, the suite reads them back.

Without ``--libvirt-uri`` the run makes its own emulated LPAR (:class:`~sim.lpar.isolated.IsolatedLpar`):
a private libvirtd, its network and pool, in a network namespace the run created. The
adaptors run inside that namespace, each pod sandbox gets a network namespace of its own,
and all traffic between adaptor and pod VMs stays there. The LPAR presents itself to the
adaptor as an IBM Z KVM host (:mod:`sim.lpar.ibmz_host`, preloaded into the adaptor's process
only), so an unmodified adaptor takes its s390x path; ``--lpar-host native`` leaves the
machine as it is (an x86_64 adaptor then makes x86_64 KVM domains). With ``--libvirt-uri``
the adaptor runs beside the suite against that libvirt, as it is.

When it is built the adaptor is started once and must answer ``Version``; a binary that is
not an adaptor, exits at start or never answers is refused there (exit 2), before any scenario.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from sim.errors import ConformanceInputError, TargetError
from sim.harness.targets.adaptorprocess.launcher import BIOS, FIRMWARE_KEY, AdaptorLauncher
from sim.harness.targets.adaptorprocess.observed import ObservedPodVMs
from sim.harness.targets.base import NotApplicable
from sim.harness.targets.lparhost import LparHost
from sim.lpar import host, ibmz_host, libvirt_faults
from sim.lpar.diskboot import FORWARDER_PORT
from sim.lpar.diskimage import DiskImageMissing, find_disk_image
from sim.lpar.isolated import IsolatedLpar
from sim.peerpods.adaptor import AdaptorStartError
from sim.peerpods.providers.libvirt import LibvirtProvider
from sim.processes import Process

LPAR_HOSTS = ("ibmz", "native")
#: Connect, read one line, print it (run inside the LPAR's network namespace); a port that
#: accepts and says nothing within 5 s prints an empty line (a refused connection fails).
ASK_GUEST = (
    "import socket, sys\n"
    "with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10) as s:\n"
    "    s.settimeout(5)\n"
    "    try:\n"
    "        print(s.makefile().readline().strip())\n"
    "    except TimeoutError:\n"
    "        print()\n"
)
#: What CAA answers to Version: the protocol constant ``cloud.Version`` (pkg/adaptor/cloud/cloud.go).
PROTOCOL_VERSION = "0.0.0"
KVM = Path("/dev/kvm")

#: Why a user's adaptor is not judged on guests that never report.
SILENT_GUESTS_NA = (
    "guests that never report can be arranged only for the suite's reference adaptor: a user's adaptor "
    "boots the pod VM image, whose agent always answers on port 15150, and this target has no LPAR that "
    "keeps that port from the adaptor (CAA would then fail the sandbox after PROXY_TIMEOUT, saying "
    "'failed to establish agent proxy connection', and delete the domain)"
)

__all__ = ["LPAR_HOSTS", "PROTOCOL_VERSION", "SILENT_GUESTS_NA", "AdaptorHost"]


class AdaptorHost(LparHost):
    """An LPAR whose cloud-api-adaptors are processes of the user's choice (see the module doc)."""

    def __init__(
        self, uri: str | None, *, binary: Path | None, cache: Path | None = None, lpar_host: str = "ibmz"
    ) -> None:
        if lpar_host not in LPAR_HOSTS:
            raise ConformanceInputError(f"--lpar-host {lpar_host!r}: one of {', '.join(LPAR_HOSTS)}")
        if lpar_host == "native" and not KVM.exists():
            raise ConformanceInputError(
                f"--lpar-host native boots x86_64 pod VMs under KVM, and {KVM} is missing (load kvm_intel or "
                "kvm_amd, or run with --lpar-host ibmz: s390x pod VMs under TCG need no KVM)"
            )
        self.lpar_host = lpar_host
        self._cache = cache
        self.isolated = IsolatedLpar() if uri is None else None
        self._preload: dict[str, str] = {}
        #: How an adaptor's command (and environment) is wrapped before it runs in the isolated
        #: LPAR (the cluster target gives each adaptor its node's namespace and service account).
        self.wrap: Callable[[Sequence[str], Mapping[str, str]], list[str]] | None = None
        self._pods: list[Any] = []  # the pod sandboxes' network namespaces of the open scenario
        try:
            if self.isolated is not None:
                self.isolated.start()
                uri = self.isolated.uri
            assert uri is not None
            # the reference boots its pod VMs' image and dials them, as CAA, where their network is the
            # run's own; beside the suite on a given libvirt it hands them the kernel (no traffic)
            self.launcher = AdaptorLauncher(
                binary,
                cache=cache,
                spawn=self._spawn if self.isolated else None,
                boot="volume" if self.isolated else "kernel",
            )
        except BaseException:
            if self.isolated is not None:
                self.isolated.stop()
            raise
        try:
            try:
                super().__init__(uri, cache=cache)
            except TargetError as exc:  # no pool, no network, no s390x emulator: before any scenario
                raise ConformanceInputError(str(exc)) from None
            host_model = str(self.connection.getInfo()[0])
            if lpar_host == "ibmz" and host_model != "s390x":
                self._preload = ibmz_host.preload_environment(ibmz_host.ibmz_host_library(cache), {})
            #: The pod VMs' architecture: what the adaptor sees as the host's.
            self.podvm_arch = "s390x" if self._preload or host_model == "s390x" else host_model
            self.podvm_image = self._upload_podvm_image(cache, required=self.launcher.boots_volume)
            if self.simulated:
                raise ConformanceInputError(
                    f"--libvirt-uri {uri}: the adaptor target needs a libvirt daemon that both the adaptor "
                    f"and the suite connect to ({host.SYSTEM_URI}); a test:/// driver lives in one process"
                )
            self.adaptor_version = self._probe_adaptor()
        except BaseException:  # Ctrl-C included: nothing of the run stays
            self._remove_lpar()
            raise

    def _upload_podvm_image(self, cache: Path | None, *, required: bool) -> str:
        """Put the pod VM disk image of :attr:`podvm_arch` into the pool as LIBVIRT_VOL_NAME, what
        an adaptor boots its pod VMs from (``lpar prepare --disk``): CAA always, the reference
        in the run's own LPAR (beside the suite on a given libvirt it hands over the kernel)."""
        arch = {"x86_64": "amd64"}.get(self.podvm_arch, self.podvm_arch)
        try:
            image = find_disk_image(arch, cache)
        except (DiskImageMissing, ConformanceInputError) as exc:
            if required:
                raise ConformanceInputError(
                    f"the adaptor boots its pod VMs from a disk image: {exc}"
                ) from None
            return "none (the reference adaptor hands its pod VMs the kernel here)"
        pool = self._probe.storage.pool()
        name = self.settings.base_volume
        with contextlib.suppress(self.libvirt.libvirtError):
            pool.storageVolLookupByName(name).delete(0)
        data = image.volume.read_bytes()
        volume = pool.createXML(
            f"<volume><name>{name}</name><capacity unit='bytes'>{len(data)}</capacity>"
            "<target><format type='qcow2'/></target></volume>",
            0,
        )
        self._probe.storage.upload(volume, data)
        host.refresh_pool(pool)
        return f"{image.volume} ({arch}, SHA-256 {image.sha256[:16]}, {image.flavour} kernel) as {name}"

    def ask_guest(self, address: str) -> str:
        """What the guest's agent answers on its forwarder port (its report line), asked from
        inside the LPAR's network namespace, where the pod VMs' network is."""
        if self.isolated is None:
            raise TargetError(f"the pod VM at {address} is reachable only from the LPAR's own network")
        return self.isolated.run([sys.executable, "-c", ASK_GUEST, address, str(FORWARDER_PORT)], timeout=30)

    def provider(self, **kwargs: Any) -> LibvirtProvider:
        """The suite's own reading side of libvirt (and the LPAR's probe), with the isolated LPAR's
        shared folder for boot files and consoles."""
        if self.isolated is not None:
            kwargs.setdefault("host_dir", self.isolated.shared_dir)
        return super().provider(**kwargs)

    def observed(self) -> ObservedPodVMs:
        """The suite's view of the pod VMs the adaptors make: read back from libvirt, the guests
        asked over the LPAR's own network."""
        return ObservedPodVMs(self.provider(), self.ask_guest if self.isolated is not None else None)

    def _spawn(self, argv: Sequence[str], environment: Mapping[str, str], output: IO[Any]) -> Process:
        """An adaptor process inside the isolated LPAR's network namespace."""
        assert self.isolated is not None
        command = self.wrap(argv, environment) if self.wrap is not None else list(argv)
        return self.isolated.popen(command, env=environment, stdout=output, stderr=output)

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
        except ValueError as exc:  # a socket path too long for a unix socket
            raise ConformanceInputError(f"{exc}; set TMPDIR to a shorter folder") from None
        self.launcher.stop(running)
        if running.version != PROTOCOL_VERSION:
            raise ConformanceInputError(
                f"{what} answered Version with {running.version!r}; a cloud-api-adaptor answers "
                f"{PROTOCOL_VERSION!r} (cloud.Version, pkg/adaptor/cloud/cloud.go)"
            )
        return running.version

    def adaptor_overrides(self) -> dict[str, str]:
        """What every adaptor of this run is given whatever the deployment says: this LPAR (and
        the IBM Z host layer, in its process only)."""
        overrides = {"LIBVIRT_URI": self.uri, **self._preload}
        if self.podvm_arch == "x86_64":
            overrides[FIRMWARE_KEY] = BIOS  # the x86_64 pod VM image boots from its MBR
        return overrides

    def libvirt_fault(self, step: str) -> dict[str, str]:
        """What an adaptor's process is given so that this LPAR's libvirt fails the pod VM's
        ``step`` (:data:`sim.lpar.libvirt_faults.STEPS`) in it: the fault layer, preloaded
        before the IBM Z host layer (any adaptor, the reference included, meets it)."""
        try:
            library = libvirt_faults.libvirt_faults_library(self._cache)
        except libvirt_faults.FaultLayerUnavailable as exc:
            raise NotApplicable(f"libvirt failing on request needs the LPAR's fault layer: {exc}") from None
        return libvirt_faults.fault_environment(step, library, self._preload)

    def pod_netns(self) -> str:
        """The pod sandbox's network namespace the shim hands over in CreateVM: a new one with
        its own interface and default route on an isolated LPAR; none (the host's) otherwise."""
        if self.isolated is None:
            return ""
        pod = self.isolated.pod_netns()
        self._pods.append(pod)
        return str(pod.path)

    def release_pod_namespaces(self) -> None:
        """Remove the pod sandboxes' namespaces of the scenario that ends (as kubelet's CNI would)."""
        while self._pods and self.isolated is not None:
            self.isolated.remove_pod_netns(self._pods.pop())

    def identity(self) -> dict[str, str]:
        facts = super().identity()
        facts.update(self.launcher.identity())
        facts["adaptor Version"] = self.adaptor_version
        facts["pod VM image"] = self.podvm_image
        facts["pod VM boot"] = (
            "the image on the boot volume, ready by DHCP lease and port 15150 (as CAA)"
            if self.launcher.boots_volume
            else "the kernel handed to the domain, ready by its console report (the reference adaptor beside "
            "the suite on a given libvirt, whose network the suite does not enter)"
        )
        facts["pod VMs"] = (
            f"{self.podvm_arch} guests under TCG"
            if self.podvm_arch == "s390x"
            else f"{self.podvm_arch} guests under KVM"
        )
        facts["libvirt host architecture"] = str(self.connection.getInfo()[0])
        if self.isolated is not None:
            facts["LPAR"] = (
                f"isolated: a private libvirtd in network namespace {self.isolated.name} made by the run"
            )
        if self._preload:
            facts["LPAR host as the adaptor sees it"] = (
                "an IBM Z KVM host (node model s390x; its kvm s390x domains run as qemu, TCG CPU model: "
                "the IBM Z host layer preloaded into the adaptor's process, part of the LPAR emulation)"
            )
        return facts

    def log_files(self) -> dict[str, Path]:
        """Every adaptor's output, and the isolated LPAR's libvirtd and QEMU logs."""
        logs = self.launcher.logs()
        if self.isolated is not None:
            logs["lpar/libvirtd.log"] = self.isolated.daemon_log
            for path in sorted(self.isolated.qemu_log_dir.glob("*.log")):
                logs[f"lpar/qemu/{path.name}"] = path
        return {name: path for name, path in logs.items() if path.is_file()}

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._remove_lpar()

    def _remove_lpar(self) -> None:
        """The isolated LPAR first: every process in it ends, those of an adaptor start that was
        interrupted too; then the adaptors' folders, which nothing writes into any more."""
        try:
            if self.isolated is not None:
                self.isolated.stop()
        finally:
            self.launcher.close()
