@needs-mutation
Feature: The webhook's registration: reinvocation and updates
  The CAA chart registers the webhook for pod CREATE with reinvocationPolicy IfNeeded;
  the OpenShift sandboxed containers operator registers it for CREATE and UPDATE, without
  a reinvocationPolicy (so Never). kube-apiserver calls an IfNeeded webhook a second time
  when a webhook after it changed the pod; on that second call the webhook sees the pod as
  its first call left it, plus what the other webhook added.
  (CAA src/webhook chart templates/webhook-config.yaml and pkg/mutating/remove-resourcespec.go;
  Kubernetes admission webhook reinvocation.)

  Background:
    Given a namespace "workloads"

  @WH-020
  Scenario: Reinvoked after another webhook adds a sidecar, the webhook sizes the pod VM from the sidecar's resources alone
    Given the MutatingWebhookConfiguration of the "caa-chart" profile is deployed
    And another webhook, registered after it, adds a container "sidecar" requesting "cpu=100m,memory=64Mi" and limited to "cpu=200m,memory=128Mi"
    And a pod "meshed" in namespace "workloads" with runtimeClassName "kata-remote"
    And its container "app" requests "cpu=1,memory=1Gi" and is limited to "cpu=2,memory=2Gi"
    When the pod is created
    Then the webhook received the pod's requests "CREATE, CREATE"
    And the pod's "default_vcpus" annotation is "1"
    And the pod's "default_memory" annotation is "128"
    And container "sidecar" has no resources
    And container "app" has no resources other than "kata.peerpods.io/vm"
    And the first container requests and is limited to "kata.peerpods.io/vm" "1"

  @WH-020
  Scenario: Reinvoked after another webhook adds a sidecar without resources, the webhook keeps its first sizing
    Given the MutatingWebhookConfiguration of the "caa-chart" profile is deployed
    And another webhook, registered after it, adds a container "sidecar" without resources
    And a pod "meshed" in namespace "workloads" with runtimeClassName "kata-remote"
    And its container "app" requests "cpu=1,memory=1Gi" and is limited to "cpu=2,memory=2Gi"
    When the pod is created
    Then the webhook received the pod's requests "CREATE, CREATE"
    And the pod's "default_vcpus" annotation is "2"
    And the pod's "default_memory" annotation is "2048"
    And container "sidecar" has no resources
    And the first container requests and is limited to "kata.peerpods.io/vm" "1"

  @WH-020
  Scenario: Under the OpenShift profile the webhook is not reinvoked, and the sidecar keeps its resources
    Given the MutatingWebhookConfiguration of the "openshift" profile is deployed
    And another webhook, registered after it, adds a container "sidecar" requesting "cpu=100m,memory=64Mi" and limited to "cpu=200m,memory=128Mi"
    And a pod "meshed" in namespace "workloads" with runtimeClassName "kata-remote"
    And its container "app" requests "cpu=1,memory=1Gi" and is limited to "cpu=2,memory=2Gi"
    When the pod is created
    Then the webhook received the pod's requests "CREATE"
    And the pod's "default_vcpus" annotation is "2"
    And the pod's "default_memory" annotation is "2048"
    And container "sidecar" requests "cpu=100m,memory=64Mi" and is limited to "cpu=200m,memory=128Mi"
    And the first container requests and is limited to "kata.peerpods.io/vm" "1"

  @WH-021
  Scenario Outline: Under the <profile> profile, an update of a peer pod is sent as <requests> and leaves its mutation as it was
    Given the MutatingWebhookConfiguration of the "<profile>" profile is deployed
    And a pod "peer" in namespace "workloads" with runtimeClassName "kata-remote"
    And its container "app" requests "cpu=1,memory=1Gi" and is limited to "cpu=2,memory=2Gi"
    When the pod is created
    And the pod is updated with the label "tier" set to "gold"
    Then the pod is admitted
    And the pod carries the label "tier" set to "gold"
    And the webhook received the pod's requests "<requests>"
    And the pod's "default_vcpus" annotation is "2"
    And the pod's "default_memory" annotation is "2048"
    And the first container requests and is limited to "kata.peerpods.io/vm" "1"
    And container "app" has no resources other than "kata.peerpods.io/vm"

    Examples:
      | profile   | requests       |
      | caa-chart | CREATE         |
      | openshift | CREATE, UPDATE |
