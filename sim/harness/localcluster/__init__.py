"""The local cluster of ``--target cluster --cluster local``: a real Kubernetes control plane.

* :mod:`sim.harness.localcluster.build` builds etcd, kube-apiserver and kube-scheduler from
  their Go modules (pinned in ``controlplane/``) into a cache keyed by version;
* :mod:`sim.harness.localcluster.pki` makes the run's certificates;
* :mod:`sim.harness.localcluster.controlplane` starts and stops them on loopback for one run;
* :mod:`sim.harness.localcluster.nodeagent` stands for each worker's kubelet + Kata runtime
  + cloud-api-adaptor.
"""
