@needs-mutation
Feature: The webhook excludes system namespaces
  The mutating webhook excludes specific system namespaces. A peer pod created in one of
  them is not mutated, so the extended-resource accounting does not work for it unless
  the pod spec already carries the extended resource. As a best practice, define a
  cluster-wide policy that allows peer pods only in specific namespaces.
  (Source document, section 4.1.2, note.)

  # Namespace exclusion is kube-apiserver acting on the MutatingWebhookConfiguration that
  # is deployed: these scenarios judge that configuration (on the webhook target, the one
  # given with --webhook-config, of its profile) and check what it lets through.

  @NS-001 @NS-002
  Scenario Outline: Under the CAA chart profile, peer pods in <namespace> are never sent to the webhook
    Given the MutatingWebhookConfiguration of the "caa-chart" profile is deployed
    And a namespace "<namespace>"
    And a pod "escaper" in namespace "<namespace>" with runtimeClassName "kata-remote"
    And its container "app" requests "cpu=1" and is limited to "cpu=2"
    When the pod is created
    Then the pod is admitted
    And the pod was never sent to the webhook
    And the webhook left the pod's resources as submitted
    And no container requests "kata.peerpods.io/vm"
    But a peer pod "counted" created in namespace "workloads" is sent to the webhook and mutated

    Examples:
      | namespace                |
      | kube-system              |
      | peer-pods-webhook-system |

  @NS-001 @NS-002
  Scenario: Under the OpenShift profile, no namespace of the operator's exclusion list is sent to the webhook
    Given the MutatingWebhookConfiguration of the "openshift" profile is deployed
    When a peer pod is created in every namespace of the "openshift" exclusion list
    Then none of those pods was sent to the webhook
    And none of those pods was mutated
    But a peer pod "counted" created in namespace "workloads" is sent to the webhook and mutated

  @NS-003
  Scenario Outline: Under the <profile> profile, peer pods in <namespace> are mutated
    Given the MutatingWebhookConfiguration of the "<profile>" profile is deployed
    And a namespace "<namespace>"
    And a pod "counted" in namespace "<namespace>" with runtimeClassName "kata-remote"
    When the pod is created
    Then the webhook received the pod's requests "CREATE"
    And the first container requests and is limited to "kata.peerpods.io/vm" "1"

    Examples:
      | profile   | namespace          |
      | caa-chart | default            |
      | caa-chart | kube-system-apps   |
      | caa-chart | openshift-config   |
      | openshift | default            |
      | openshift | openshift-payments |
      | openshift | kube-public        |

  @NS-004 @needs-cluster
  Scenario: A peer pod in an excluded namespace escapes the accounting
    Given the webhook is registered as in the "caa-chart" profile
    And peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "1"
    And a worker node "worker-0"
    And a namespace "team-a"
    And a namespace "kube-system"
    When a peer pod "counted" is created in namespace "team-a"
    And a peer pod "escaped" is created in namespace "kube-system"
    Then pod "counted" in namespace "team-a" is Running
    And pod "escaped" in namespace "kube-system" is Running
    And node "worker-0" has 1 "kata.peerpods.io/vm" allocated

  @NS-004 @needs-cluster
  Scenario: A peer pod in an excluded namespace is counted when its spec already carries the extended resource
    Given the webhook is registered as in the "caa-chart" profile
    And peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "1"
    And a worker node "worker-0"
    And a namespace "kube-system"
    And a pod "declared" in namespace "kube-system" with runtimeClassName "kata-remote"
    And its container "app" requests "kata.peerpods.io/vm=1" and is limited to "kata.peerpods.io/vm=1"
    When the pod is created
    And a peer pod "second" is created in namespace "kube-system"
    And another pod "third" that declares "kata.peerpods.io/vm=1" is created in namespace "kube-system"
    Then pod "declared" in namespace "kube-system" is Running
    And pod "second" in namespace "kube-system" is Running
    And node "worker-0" has 1 "kata.peerpods.io/vm" allocated
    And pod "third" in namespace "kube-system" is Pending because of "Insufficient kata.peerpods.io/vm"

  @NS-005 @needs-cluster
  Scenario: The recommended policy admits peer pods only in the chosen namespaces
    Given the webhook is registered as in the "caa-chart" profile
    And a namespace "confidential"
    And a namespace "kube-system"
    And peer pods are allowed only in namespace "confidential"
    When a peer pod "allowed" is created in namespace "confidential"
    And a peer pod "sneaky" is created in namespace "kube-system"
    Then pod "allowed" in namespace "confidential" was admitted
    And pod "sneaky" in namespace "kube-system" was refused with a reason mentioning "kube-system"

  @NS-005 @needs-cluster
  Scenario: The recommended policy leaves ordinary pods alone
    Given a namespace "kube-system"
    And peer pods are allowed only in namespace "confidential"
    And a pod "coredns" in namespace "kube-system" without a runtimeClassName
    When the pod is created
    Then the pod is admitted

  @NS-006 @needs-cluster
  Scenario Outline: An unreachable webhook under failurePolicy <policy>
    Given the webhook is registered as in the "caa-chart" profile with failurePolicy "<policy>"
    And a namespace "workloads"
    And the webhook endpoint cannot be reached
    And a pod "orphan" in namespace "workloads" with runtimeClassName "kata-remote"
    When the pod is created
    Then the pod is <verdict>

    Examples:
      | policy | verdict                                       |
      | Fail   | refused with a reason mentioning "mwebhook.peerpods.io" |
      | Ignore | admitted without the extended resource        |
