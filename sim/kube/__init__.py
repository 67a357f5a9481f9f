"""A real Kubernetes control plane for the ``cluster`` target.

* :mod:`sim.kube.build` builds etcd, kube-apiserver and kube-scheduler from their Go
  modules (pinned in ``controlplane/``) into a cache keyed by version;
* :mod:`sim.kube.controlplane` starts and stops them on loopback for one run;
* :mod:`sim.kube.nodeagent` stands for each worker's kubelet + Kata runtime + cloud-api-adaptor.
"""
