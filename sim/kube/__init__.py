"""The reference Kubernetes: what the API server, the scheduler and the kubelet do to a peer pod.

* :mod:`sim.kube.admission`, :mod:`sim.kube.selectors`, :mod:`sim.kube.podchecks`: the API
  server's admission chain (defaulting, RuntimeClass, mutating webhooks and their selectors,
  validation);
* :mod:`sim.kube.scheduler`: node fit on extended resources and overhead;
* :mod:`sim.kube.cluster`, :mod:`sim.kube.nodepool`, :mod:`sim.kube.schedulingqueue`: the
  in-process cluster, its nodes (each with its kubelet, which starts a bound pod's sandbox
  through the Kata runtime and the adaptor) and its scheduling queue of pending pods;
  :mod:`sim.kube.podstate`: a stored pod and what became of it;
* :mod:`sim.kube.profiles`: the objects each deployment profile (chart, OpenShift) installs.
"""
