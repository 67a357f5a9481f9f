"""The ``cluster`` target: the features against a real Kubernetes control plane.

``--cluster local`` (the default) starts etcd, kube-apiserver and kube-scheduler built from
Kubernetes' own Go modules (see the local control plane below); kube-apiserver does
admission (defaulting, the RuntimeClass plugin's overhead, the mutating webhook through a real
MutatingWebhookConfiguration calling the reference webhook server over HTTPS, a
ValidatingAdmissionPolicy for the namespace best practice), kube-scheduler binds pods.
The worker nodes are simulated kubelets (:mod:`~sim.harness.targets.cluster.nodeagent`):
each registers its Node, and its cloud-api-adaptor (the reference one) patches ``kata.peerpods.io/vm`` into
the node's capacity and creates the pod VMs through the in-memory provider.

``--kubeconfig PATH [--context NAME]`` runs on somebody else's cluster (kind, OpenShift with
the sandboxed containers operator): the suite creates its namespaces (labelled
``peerpods-conformance/run``) and pods there and deletes them afterwards; it uses the
webhook and adaptors as deployed, so scenarios that would change them (another webhook
profile or environment, nodes, the per-node limit) are not applicable, with that reason.

``--cluster kind`` / ``--cluster k3s`` need a container engine; without one answering the
target refuses to start (exit 2) naming what it looked for.

* :mod:`sim.harness.targets.cluster.target`: connecting (or starting the local control
  plane), installing what every scenario shares, identity, teardown (setup);
* :mod:`sim.harness.targets.cluster.environment`: one scenario through the API server
  (assessment), and the deletion of what it made (teardown);
* the local control plane: :mod:`~sim.harness.targets.cluster.build` builds etcd,
  kube-apiserver and kube-scheduler from their Go modules (pinned in ``controlplane/``) into a
  cache keyed by version; :mod:`~sim.harness.targets.cluster.pki` makes the run's certificates;
  :mod:`~sim.harness.targets.cluster.controlplane` starts and stops them on loopback for one
  run; :mod:`~sim.harness.targets.cluster.nodeagent` stands for each worker's kubelet + Kata
  runtime + cloud-api-adaptor.
"""

from sim.harness.targets.cluster.target import CLUSTERS, ClusterTarget, connect, require_container_engine

__all__ = ["CLUSTERS", "ClusterTarget", "connect", "require_container_engine"]
