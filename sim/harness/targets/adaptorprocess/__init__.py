"""Cloud-api-adaptors as processes on an LPAR, driven as the Kata shim drives them.

Shared by the ``adaptor`` target and the ``cluster`` target (``--adaptor-binary``). Modules:
``launcher`` (how an adaptor process is started, stopped and probed: the suite's reference
``peerpods-conformance adaptor serve`` or a user's build of upstream's binary); ``remote`` (one
node's adaptor behind the remote hypervisor API, which the suite calls as the shim does);
``observed`` (the pod VMs the adaptor made, read back from libvirt); ``host`` (the LPAR they
run on, with what every adaptor of the run is given).
"""
