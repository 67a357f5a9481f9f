@needs-podvm
Feature: Initdata reaches the pod VM by precedence
  An initdata.toml file, gzip-compressed and base64-encoded, configures the Attestation
  Agent, the Confidential Data Hub and, optionally, the Kata agent policy inside the pod
  VM. Added as INITDATA to the peer pods config map it is the default for all peer pods;
  added as an annotation to a pod manifest it overrides the global value for that pod.
  (Source document, section 4.1.3.)

  The cloud-api-adaptor reads peer-pods-cm when it starts, so each scenario configures it
  before the worker node (and its adaptor) comes up. On its way, the pod's annotation is
  decoded by the Kata runtime before any pod VM is requested, and encoded again by the
  adaptor (kata-containers addHypervisorInitdataOverrides; CAA GetInitdataFromAnnotation).

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
    And the pod VM's user data carries the TOML of "attestation.toml", encoded again, at "/run/peerpod/initdata"
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

  @ID-003
  Scenario: An empty INITDATA is no initdata
    Given peer-pods-cm sets INITDATA to ""
    And a worker node "worker-0"
    When a peer pod "plain" is created in namespace "confidential"
    Then the pod VM's user data carries nothing at "/run/peerpod/initdata"
    And the pod VM used the default initdata

  @ID-002 @ID-006
  Scenario: Initdata written inline is digested with the algorithm it names
    Given peer-pods-cm sets INITDATA to this initdata:
      """
      algorithm = "sha384"
      version = "0.1.0"

      [data]
      "aa.toml" = '''
      [token_configs]
      [token_configs.kbs]
      url = "https://kbs.example:8080"
      '''
      """
    And a worker node "worker-0"
    When a peer pod "inline" is created in namespace "confidential"
    Then the pod VM received that initdata, digested with the algorithm it names

  @ID-002 @NL-006
  Scenario: A changed INITDATA reaches new pods only after the cloud-api-adaptor restarts
    Given peer-pods-cm sets INITDATA to the initdata of "global.toml"
    And a worker node "worker-0"
    When peer-pods-cm is changed to set INITDATA to the initdata of "sha512.toml"
    And a peer pod "before" is created in namespace "confidential"
    Then pod "before" in namespace "confidential" received the initdata of "global.toml"
    When pod "before" in namespace "confidential" is deleted
    And the cloud-api-adaptors restart
    And a peer pod "after" is created in namespace "confidential"
    Then pod "after" in namespace "confidential" received the initdata of "sha512.toml"

  @ID-005
  Scenario: The pod VM writes only the allow-listed files
    Given a worker node "worker-0"
    And a pod "policy" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "attestation.toml"
    When the pod is created
    Then the pod VM wrote "/run/peerpod/aa.toml", "/run/peerpod/cdh.toml" and "/run/peerpod/policy.rego"

  @ID-010
  Scenario: A key that is an absolute path is joined to /run/peerpod as Go joins it
    Given a worker node "worker-0"
    And a pod "absolute" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with this initdata:
      """
      algorithm = "sha256"
      version = "0.1.0"

      [data]
      "/aa.toml" = "[token_configs]\n"
      "/run/peerpod/cdh.toml" = "socket = 'x'\n"
      "/../etc/passwd" = "root::0:0::/:/bin/sh\n"
      """
    When the pod is created
    Then the pod VM wrote "/run/peerpod/aa.toml"
    And the pod VM ignored the keys "/run/peerpod/cdh.toml" and "/../etc/passwd"

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
  Scenario Outline: A broken annotation fails the sandbox before any pod VM (<problem>)
    Given a worker node "worker-0"
    And a pod "broken" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with initdata that <problem>
    When the pod is created
    Then the pod never runs: its sandbox fails with a reason mentioning "initdata"
    And no pod VM was requested

    Examples:
      | problem                              |
      | lacks one base64 padding character   |
      | is not base64 at all                 |
      | is base64 but not gzip               |
      | is gzip but not TOML                 |
      | names the algorithm "md5"            |

  @ID-011
  Scenario Outline: The refusal names the precise problem (<problem>)
    Given a worker node "worker-0"
    And a pod "broken" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with initdata that <problem>
    When the pod is created
    Then the pod never runs: its sandbox fails with a reason mentioning "<mention>"

    Examples:
      | problem                              | mention   |
      | lacks one base64 padding character   | padding   |
      | is not base64 at all                 | base64    |
      | is base64 but not gzip               | gzip      |
      | is gzip but not TOML                 | TOML      |
      | names the algorithm "md5"            | md5       |

  @ID-009
  Scenario: The pod VM does not check the version
    Given a worker node "worker-0"
    And a pod "versionless" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated with the initdata of "no-version.toml"
    When the pod is created
    Then the pod is Running
    And the pod VM received the initdata of "no-version.toml"

  @ID-008 @needs-cluster
  Scenario: A broken global INITDATA stops the cloud-api-adaptor, so its node takes no peer pod
    Given peer-pods-cm sets INITDATA to initdata that is base64 but not gzip
    And a worker node "worker-0"
    When a peer pod "homeless" is created in namespace "confidential"
    Then the cloud-api-adaptor on node "worker-0" is not running, having said "failed to parse global initdata"
    And node "worker-0" does not advertise "kata.peerpods.io/vm" at all
    And pod "homeless" in namespace "confidential" is Pending because of "Insufficient kata.peerpods.io/vm"
