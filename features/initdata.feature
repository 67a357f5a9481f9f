@needs-podvm
Feature: Initdata reaches the pod VM by precedence
  An initdata.toml file, gzip-compressed and base64-encoded, configures the Attestation
  Agent, the Confidential Data Hub and, optionally, the Kata agent policy inside the pod
  VM. Added as INITDATA to the peer pods config map it is the default for all peer pods;
  added as an annotation to a pod manifest it overrides the global value for that pod.
  (Source document, section 4.1.3.)

  The cloud-api-adaptor reads peer-pods-cm when it starts, so each scenario configures it
  before the worker node (and its adaptor) comes up.

  Background:
    Given a namespace "confidential"

  @ID-001 @ID-004
  Scenario: The pod's annotation overrides the global INITDATA
    Given peer-pods-cm sets INITDATA to the initdata of "global.toml"
    And a worker node "worker-0"
    And a pod "annotated" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "attestation.toml"
    When the pod is created
    Then the pod is Running
    And the pod VM's user data carries the pod's annotation at "/run/peerpod/initdata"
    And the pod VM received the initdata of "attestation.toml"

  @ID-002 @ID-004
  Scenario: Without an annotation, the global INITDATA applies to every peer pod
    Given peer-pods-cm sets INITDATA to the initdata of "global.toml"
    And a worker node "worker-0"
    When a peer pod "first" is created in namespace "confidential"
    And a peer pod "second" is created in namespace "confidential"
    Then pod "first" in namespace "confidential" received the initdata of "global.toml"
    And pod "second" in namespace "confidential" received the initdata of "global.toml"

  @ID-002
  Scenario: An empty annotation does not override the global INITDATA
    Given peer-pods-cm sets INITDATA to the initdata of "global.toml"
    And a worker node "worker-0"
    And a pod "empty" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated "io.katacontainers.config.hypervisor.cc_init_data" with ""
    When the pod is created
    Then the pod VM received the initdata of "global.toml"

  @ID-003
  Scenario: With no initdata at all the pod VM uses the default initdata
    Given a worker node "worker-0"
    When a peer pod "plain" is created in namespace "confidential"
    Then the pod VM's user data carries nothing at "/run/peerpod/initdata"
    And the pod VM used the default initdata

  @ID-005
  Scenario: The pod VM writes only the allow-listed files
    Given a worker node "worker-0"
    And a pod "policy" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "attestation.toml"
    When the pod is created
    Then the pod VM wrote "/run/peerpod/aa.toml", "/run/peerpod/cdh.toml" and "/run/peerpod/policy.rego"

  @ID-005
  Scenario: Keys outside the allow-list are ignored, never written
    Given a worker node "worker-0"
    And a pod "escape" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "escape-attempt.toml"
    When the pod is created
    Then the pod VM wrote "/run/peerpod/aa.toml"
    And the pod VM ignored the keys "../../etc/x" and "shadow"

  @ID-006
  Scenario Outline: initdata.digest uses the algorithm the document names (<algorithm>)
    Given a worker node "worker-0"
    And a pod "digest" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "<file>"
    When the pod is created
    Then the pod VM's initdata digest is the <algorithm> digest of "<file>"

    Examples:
      | file             | algorithm |
      | global.toml      | sha256    |
      | attestation.toml | sha384    |
      | sha512.toml      | sha512    |

  @ID-007
  Scenario Outline: Broken initdata is refused with a message naming the problem (<problem>)
    Given a worker node "worker-0"
    And a pod "broken" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with initdata that <problem>
    When the pod is created
    Then the pod VM refused the initdata with an error mentioning "<mention>"
    And the pod VM wrote no initdata file

    Examples:
      | problem                              | mention   |
      | lacks one base64 padding character   | padding   |
      | is not base64 at all                 | base64    |
      | is base64 but not gzip               | gzip      |
      | is gzip but not TOML                 | TOML      |
      | names the algorithm "md5"            | md5       |
      | has no version                       | version   |
