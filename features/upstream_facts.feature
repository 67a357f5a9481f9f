Feature: What upstream does where the document is silent
  The document describes the webhook's two changes and the per-node limit; upstream's code
  settles what it leaves open: the webhook writes a sizing annotation only from a sum above
  zero (CAA remove-resourcespec.go adjustResourceSpec) and never looks at pod-level
  spec.resources; the cloud-api-adaptor advertises the fixed name kata.peerpods.io/vm
  (k8sops/node.go AdvertiseExtendedResources), "0" for a limit of 0 and nothing for a
  negative one.

  Background:
    Given a namespace "workloads"

  @WH-012 @needs-mutation
  Scenario: Sizing annotations already on a pod are kept when it requests nothing
    Given a pod "pre-sized" in namespace "workloads" with runtimeClassName "kata-remote"
    And the pod is annotated "io.katacontainers.config.hypervisor.default_vcpus" with "4"
    And the pod is annotated "io.katacontainers.config.hypervisor.default_memory" with "6144"
    When the pod is created
    Then the pod is admitted
    And the pod's "default_vcpus" annotation is "4"
    And the pod's "default_memory" annotation is "6144"
    And the first container requests and is limited to "kata.peerpods.io/vm" "1"

  @WH-012 @needs-mutation
  Scenario: A computed sum replaces an annotation already on the pod
    Given a pod "re-sized" in namespace "workloads" with runtimeClassName "kata-remote"
    And the pod is annotated "io.katacontainers.config.hypervisor.default_vcpus" with "4"
    And its container "app" requests "cpu=1" and is limited to "cpu=2"
    When the pod is created
    Then the pod's "default_vcpus" annotation is "2"

  @WH-013 @WH-004 @needs-mutation
  Scenario: Pod-level spec.resources are neither summed nor removed
    Given the pod:
      """
      apiVersion: v1
      kind: Pod
      metadata:
        name: pod-level
        namespace: workloads
      spec:
        runtimeClassName: kata-remote
        resources:
          requests: {cpu: "3", memory: 3Gi}
          limits: {cpu: "3", memory: 3Gi}
        containers:
          - name: app
            image: registry.example/app:1.0
          - name: sidecar
            image: registry.example/sidecar:1.0
            resources:
              requests: {cpu: 500m}
              limits: {cpu: "1"}
      """
    When the pod is created
    Then the pod is admitted
    And the pod's "default_vcpus" annotation is "1"
    And the pod's "default_memory" annotation is "absent"
    And the pod still carries its pod-level resources "cpu=3,memory=3Gi"
    And container "app" requests and is limited to "kata.peerpods.io/vm" "1"
    And container "sidecar" requests no "kata.peerpods.io/vm"
    And container "sidecar" has no resources

  @NL-008 @needs-cluster
  Scenario: A limit of 0 is advertised as "0", and no peer pod fits
    Given peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "0"
    And a worker node "worker-0"
    When a peer pod "zero" is created in namespace "workloads"
    Then node "worker-0" advertises "kata.peerpods.io/vm" as "0"
    And pod "zero" in namespace "workloads" is Pending because of "Insufficient kata.peerpods.io/vm"

  @NL-008 @NL-005 @needs-cluster
  Scenario: A negative limit advertises nothing at all, which is not "0"
    Given peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "-1"
    And a worker node "worker-0"
    Then node "worker-0" does not advertise "kata.peerpods.io/vm" at all

  @NL-009 @needs-cluster @needs-webhook-settings
  Scenario: A renamed extended resource leaves peer pods Pending, since the adaptor advertises kata.peerpods.io/vm
    Given the webhook runs with POD_VM_EXTENDED_RESOURCE set to "example.com/podvm"
    And a worker node "worker-0"
    When a peer pod "renamed" is created in namespace "workloads"
    Then node "worker-0" advertises 10 "kata.peerpods.io/vm"
    And node "worker-0" does not advertise "example.com/podvm" at all
    And pod "renamed" in namespace "workloads" is Pending because of "Insufficient example.com/podvm"

  @NS-003 @needs-cluster
  Scenario: A namespace cannot label itself into the exclusion list
    Given the webhook is registered as in the "caa-chart" profile
    And a namespace "team-a" labelled "kubernetes.io/metadata.name=kube-system,team=a"
    When a peer pod "sneaky" is created in namespace "team-a"
    Then the pod is admitted
    And the first container requests and is limited to "kata.peerpods.io/vm" "1"
