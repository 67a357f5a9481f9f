@needs-guest
Feature: Inside the s390x pod VM, initdata is decoded, provisioned and digested
  What the pod VM's own agent reports after booting on the LPAR: the cloud-init disk was
  read, initdata chosen by precedence arrived, only the allow-listed files were written and
  the digest was computed inside the guest with the algorithm the document names (source
  document, section 4.1.3; CAA process-user-data). Runs where pod VMs really boot.

  Background:
    Given a namespace "confidential"
    And a worker node "worker-0"

  @GI-001
  Scenario: The pod VM is an s390x guest that reads its machine type
    When a peer pod "probe" is created in namespace "confidential"
    Then the pod is Running
    And the guest reports architecture "s390x" and an IBM Z machine type

  @GI-002
  Scenario: The guest digests initdata with sha256, sha384 and sha512
    Given a pod "d256" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "global.toml"
    And a pod "d384" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "attestation.toml"
    And a pod "d512" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "sha512.toml"
    When the pods are created
    Then the guest of pod "d256" computed the sha256 digest of "global.toml"
    And the guest of pod "d384" computed the sha384 digest of "attestation.toml"
    And the guest of pod "d512" computed the sha512 digest of "sha512.toml"

  @GI-003
  Scenario: The annotation wins over INITDATA, INITDATA applies to the rest
    Given peer-pods-cm sets INITDATA to the initdata of "global.toml"
    And a pod "annotated" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "attestation.toml"
    And a pod "plain" in namespace "confidential" with runtimeClassName "kata-remote"
    When the cloud-api-adaptors restart
    And the pods are created
    Then pod "annotated" in namespace "confidential" received the initdata of "attestation.toml"
    And pod "plain" in namespace "confidential" received the initdata of "global.toml"

  @GI-003
  Scenario: Without any initdata the guest digests its default one
    When a peer pod "bare" is created in namespace "confidential"
    Then the pod VM used the default initdata

  @GI-004
  Scenario: policy.rego is provisioned, and a key outside the allow-list is not
    Given a pod "policy" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "attestation.toml"
    And a pod "escape" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "escape-attempt.toml"
    When the pods are created
    Then the guest of pod "policy" wrote "/run/peerpod/policy.rego"
    And the guest of pod "escape" ignored "../../etc/x" and wrote nothing outside /run/peerpod

  @GI-005
  Scenario: Initdata that lacks its base64 padding never reaches a guest
    Given a pod "broken" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with initdata that lacks one base64 padding character
    When the pod is created
    Then the pod never runs: its sandbox fails with a reason mentioning "initdata"
    And no pod VM was requested
