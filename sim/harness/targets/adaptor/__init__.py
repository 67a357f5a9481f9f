"""The ``adaptor`` target: a cloud-api-adaptor process, driven as the Kata shim drives it.

Modules: ``launcher`` (how an adaptor process is started, stopped and probed: the suite's
reference ``peerpods-conformance adaptor serve`` or a user's build of upstream's binary);
``remote`` (one node's adaptor behind the remote hypervisor API, which the suite calls as
the shim does); ``observed`` (the pod VMs the adaptor made, read back from libvirt);
``environment`` (one scenario); ``target`` (the run).
"""

from sim.harness.targets.adaptor.target import AdaptorTarget

__all__ = ["AdaptorTarget"]
