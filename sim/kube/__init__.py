"""The reference Kubernetes: what the API server, the scheduler and the kubelet do to a peer pod.

* :mod:`sim.kube.admission`, :mod:`sim.kube.selectors`, :mod:`sim.kube.podchecks`: the API
  server's admission chain (defaulting, RuntimeClass, mutating webhooks and their selectors,
  validation);
* :mod:`sim.kube.scheduler`: node fit on extended resources and overhead;
* :mod:`sim.kube.cluster`, :mod:`sim.kube.nodepool`, :mod:`sim.kube.pending`: the in-process
  cluster, its nodes (each with its kubelet, Kata runtime and adaptor) and its pending pods;
* :mod:`sim.kube.profiles`: the objects each deployment profile (chart, OpenShift) installs.
"""
