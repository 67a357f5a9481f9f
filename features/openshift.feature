@needs-podvm
Feature: Peer pods as OpenShift sandboxed containers deploys them
  The OpenShift sandboxed containers operator keeps the libvirt connection keys
  (LIBVIRT_URI, LIBVIRT_NET, LIBVIRT_POOL) in the Secret peer-pods-secret rather than in
  peer-pods-cm (OSC config/peerpods/peerpodssecret.yaml), and its Kata runtime
  configuration (configuration-remote.toml) sets default_vcpus = 1 and default_memory =
  2048, which Kata sends to the cloud-api-adaptor for every pod VM. The upstream chart
  keeps the keys in the config map, and upstream Kata sets no such defaults.

  Background:
    Given peer pods are deployed as in the "openshift" profile
    And a namespace "confidential"

  @VM-011
  Scenario: A pod VM without sizing annotations is 1 vCPU and 2048 MiB under OpenShift
    Given a worker node "worker-0"
    When a peer pod "plain" is created in namespace "confidential"
    Then the pod is Running
    And the pod VM has 1 vCPUs and 2048 MiB of memory

  @VM-011 @VM-004
  Scenario: The webhook's annotations still size the pod VM under OpenShift
    Given a worker node "worker-0"
    And a pod "sized" in namespace "confidential" with runtimeClassName "kata-remote"
    And its container "app" requests "cpu=2,memory=4Gi" and is limited to "cpu=3,memory=5Gi"
    When the pod is created
    Then the pod VM has 3 vCPUs and 5120 MiB of memory

  @VM-012 @needs-lpar-host
  Scenario: The adaptor takes LIBVIRT_POOL from peer-pods-secret
    Given peer-pods-secret sets LIBVIRT_POOL to "osc-secret-pool"
    And a worker node "worker-0"
    When a peer pod "pooled" is created in namespace "confidential"
    Then the cloud-api-adaptor on node "worker-0" is not running, having said "'osc-secret-pool'"
    And pod "pooled" in namespace "confidential" is Pending because of "Insufficient kata.peerpods.io/vm"
    And no pod VM and no volume remains
