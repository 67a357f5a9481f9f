"""The ``adaptor`` target: a cloud-api-adaptor process, driven as the Kata shim drives it.

Modules: ``environment`` (one scenario) and ``target`` (the run); the adaptor processes, the
shim's calls and the LPAR they run on are :mod:`sim.harness.targets.adaptorprocess`.
"""

from sim.harness.targets.adaptor.target import AdaptorTarget

__all__ = ["AdaptorTarget"]
