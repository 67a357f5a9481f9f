"""One node's cloud-api-adaptor behind the remote hypervisor API, called as the Kata shim calls it.

The in-process cluster asks each node's adaptor for pod VMs (:class:`~sim.peerpods.adaptor.NodeAdaptor`);
here that adaptor is a process (:mod:`.launcher`) and every request goes over its socket:

* ``start`` (re)starts the process with the deployment's environment, as a restarted
  adaptor pod re-reads peer-pods-cm and peer-pods-secret; one that exits at start did not
  start, and its output is why.
* ``create_pod_vm`` is the shim's ``CreateVM`` (the annotations Kata sends, a fresh sandbox
  id, the pod's network namespace), then ``StartVM``, which returns once the pod VM is
  ready. The pod VM is the domain that appeared in libvirt meanwhile: its name is the
  adaptor's own choice, read back, never computed here.
* ``delete_pod_vm`` is ``StopVM``. A restarted adaptor has forgotten the sandboxes of the
  process before it (CAA keeps them in memory); their pod VMs are deleted through libvirt,
  as peer pods' controller (``src/peerpod-ctrl``) deletes a pod VM whose pod is gone.

A call the adaptor refuses, or cannot answer, fails the sandbox with the adaptor's own words.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any

from sim.harness.targets.adaptorprocess.launcher import AdaptorLauncher, RunningAdaptor
from sim.peerpods.adaptor import (
    ADVERTISED_RESOURCE,
    AdaptorConfig,
    AdaptorStartError,
    PodVMError,
)
from sim.peerpods.hypervisor.client import AdaptorUnreachable, RemoteError
from sim.peerpods.kata import remote_annotations

__all__ = ["START_VM_TIMEOUT_S", "RemoteAdaptor"]

#: How long the suite, as the shim, waits for StartVM (CAA's own waits end well before).
START_VM_TIMEOUT_S = 300.0


class RemoteAdaptor:
    """A :class:`~sim.peerpods.adaptor.NodeAdaptor` that is an adaptor process.

    ``environment()`` gives the process environment for a (re)start (with ``NODE_NAME`` in it the
    process patches its Node itself, as CAA does in a cluster); ``domains()`` lists the
    libvirt domains that exist now; ``netns()`` is the pod network namespace to hand over.
    """

    resource = ADVERTISED_RESOURCE

    def __init__(
        self,
        node: str,
        launcher: AdaptorLauncher,
        *,
        environment: Callable[[Mapping[str, str]], dict[str, str]],
        domains: Callable[[], set[str]],
        netns: Callable[[], str],
        reclaim: Callable[[str], None],
        reuse: bool = True,
    ) -> None:
        self.node = node
        self.config: AdaptorConfig | None = None
        self.start_error: str | None = None
        self.running: RunningAdaptor | None = None
        self._launcher = launcher
        self._environment = environment
        self._domains = domains
        self._netns = netns
        self._reclaim = reclaim
        #: An idle process may serve a later scenario (not when it patched its node: stopping it
        #: later would withdraw the capacity of a node of the same name).
        self._reuse = reuse
        self._started = False
        self._sandboxes: dict[str, str] = {}  # pod VM -> sandbox id, of the running process
        self._orphans: set[str] = set()  # pod VMs an earlier process of this adaptor made
        self._interrupted = False  # a call to the running process was abandoned half-way
        self._lock = threading.Lock()

    def start(self, peer_pods_cm: Mapping[str, str] | None) -> int | None:
        """The node's adaptor starts (its first start may take an idle process of an earlier
        scenario started with the same environment, as a DaemonSet's pod serves many pods); a
        restart is always a new process."""
        restart = self._started
        self.stop()
        self.config, self.start_error = None, None
        config = AdaptorConfig.from_configmap(peer_pods_cm)  # a malformed number names the key
        self._started = True
        try:
            self.running = self._launcher.start(
                f"the cloud-api-adaptor of node {self.node}",
                self._environment(dict(peer_pods_cm or {})),
                fresh=restart or not self._reuse,
            )
        except AdaptorStartError as exc:
            self.start_error = str(exc)
            raise
        self.config = config
        return config.advertised

    def create_pod_vm(self, pod: Mapping[str, Any]) -> str:
        running = self._running()
        meta = pod.get("metadata") or {}
        where = f"pod {meta.get('namespace', 'default')}/{meta.get('name')}"
        sandbox = secrets.token_hex(32)
        with self._lock:  # one sandbox at a time: the new domain is the one that appears
            before = self._domains()
            try:
                running.client.create_vm(sandbox, remote_annotations(pod), self._netns())
                running.client.start_vm(sandbox, timeout=START_VM_TIMEOUT_S)
            except (RemoteError, AdaptorUnreachable) as exc:
                self._forget(running, sandbox)
                raise PodVMError(f"creating pod VM for {where} failed: {exc}") from None
            except BaseException:  # interrupted (Ctrl-C): the process may still be making it
                self._interrupted = True
                raise
            made = sorted(self._domains() - before)
        if len(made) != 1:
            self._forget(running, sandbox)
            found = ", ".join(made) or "none"
            raise PodVMError(
                f"StartVM for {where} succeeded, but libvirt shows {len(made)} new domains ({found})"
            )
        self._sandboxes[made[0]] = sandbox
        return made[0]

    def delete_pod_vm(self, instance_id: str) -> None:
        if instance_id in self._orphans:
            self._orphans.discard(instance_id)
            self._reclaim(instance_id)
            return
        sandbox = self._sandboxes.pop(instance_id, None)
        if sandbox is None or self.running is None:
            raise PodVMError(
                f"pod VM {instance_id} was not made by the cloud-api-adaptor of node {self.node}"
            )
        try:
            self.running.client.stop_vm(sandbox)
        except (RemoteError, AdaptorUnreachable) as exc:
            raise PodVMError(f"StopVM for pod VM {instance_id} failed: {exc}") from None

    def stop(self, *, reuse: bool = True) -> None:
        """Stop the process; its pod VMs become orphans. ``reuse``: a process that made nothing
        still alive may serve the next scenario whose adaptor has the same environment."""
        if self.running is not None:
            running, self.running = self.running, None
            self._orphans.update(self._sandboxes)
            idle = not self._sandboxes and not self._interrupted
            self._interrupted = False
            self._sandboxes.clear()
            self._launcher.stop(running, reuse=reuse and idle and self._reuse)

    def _running(self) -> RunningAdaptor:
        if self.running is None or self.running.process.poll() is not None:
            why = self.start_error or (self.running.output() if self.running else "not started")
            raise PodVMError(f"the cloud-api-adaptor on node {self.node} is not running: {why}")
        return self.running

    @staticmethod
    def _forget(running: RunningAdaptor, sandbox: str) -> None:
        """After a failed StartVM the shim stops the sandbox (kata's ``StopVM`` on cleanup)."""
        with contextlib.suppress(RemoteError, AdaptorUnreachable):
            running.client.stop_vm(sandbox, timeout=30.0)
