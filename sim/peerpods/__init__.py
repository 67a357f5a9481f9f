"""The reference peer pods components: cloud-api-adaptor's webhook and adaptor, and Kata's part.

* :mod:`sim.peerpods.webhook`: CAA's mutating webhook (``src/webhook``);
* :mod:`sim.peerpods.kata`: the Kata runtime step between the kubelet and the adaptor;
* :mod:`sim.peerpods.adaptor`: the cloud-api-adaptor (``pkg/adaptor``), which asks a provider
  for the pod VM;
* :mod:`sim.peerpods.initdata`, :mod:`sim.peerpods.cloudconfig`, :mod:`sim.peerpods.podvm`:
  initdata, the cloud-init user data, and what the pod VM does with them;
* :mod:`sim.peerpods.providers`: the cloud providers (in memory; libvirt, CAA's s390x provider).
"""
