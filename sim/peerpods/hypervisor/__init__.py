"""The remote hypervisor API between the Kata shim and the cloud-api-adaptor (ttrpc).

Modules: ``hypervisor.proto`` and ``ttrpc.proto`` (the messages, written for this suite with
upstream's field numbers) and their generated ``*_pb2`` modules (``generate``); ``wire``
(ttrpc's framing); ``client`` (the shim's side, which the suite plays); ``server`` (a ttrpc
server, which the reference adaptor serves the API with).
"""
