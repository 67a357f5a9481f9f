@needs-podvm @needs-lpar-host
Feature: Pod VMs are libvirt domains on the LPAR, made and removed with their pods
  On IBM Z the cloud-api-adaptor's libvirt provider creates one domain per peer pod on the
  LPAR: named after the pod and its sandbox, an s390x machine with a boot volume backed by
  the pod VM image, a cloud-init disk carrying the cloud-config, an sclp console and a
  virtio NIC, sized from the webhook's annotations or the config map (source document,
  sections 4.1.1-4.1.3; CAA libvirt provider). The adaptor reads peer-pods-cm when it starts,
  so a changed setting applies once the adaptors restart (CAA cmd/cloud-api-adaptor).

  Background:
    Given a namespace "confidential"
    And a worker node "worker-0"

  @VM-001 @VM-002 @VM-003
  Scenario: A peer pod gets an s390x domain shaped as the libvirt provider shapes it
    When a peer pod "web" is created in namespace "confidential"
    Then the pod VM is named "podvm-web-" and 8 characters of its sandbox id
    And the pod VM is an s390x domain on machine "s390-ccw-virtio"
    And the pod VM boots from a qcow2 volume in pool "default" backed by "podvm-base.qcow2"
    And the pod VM has a raw cloud-init disk carrying its cloud-config
    And the pod VM has an sclp console, a virtio NIC on network "default", a virtio RNG and a memballoon with iommu

  @VM-004
  Scenario: The pod VM is sized from the webhook's annotations
    Given a pod "sized" in namespace "confidential" with runtimeClassName "kata-remote"
    And its container "app" requests "cpu=2,memory=4Gi" and is limited to "cpu=3,memory=5Gi"
    When the pod is created
    Then the pod VM has 3 vCPUs and 5120 MiB of memory

  @VM-004
  Scenario: Without annotations the pod VM gets LIBVIRT_CPU and LIBVIRT_MEMORY
    Given peer-pods-cm sets LIBVIRT_CPU to "1"
    And peer-pods-cm sets LIBVIRT_MEMORY to "2048"
    When the cloud-api-adaptors restart
    And a peer pod "plain" is created in namespace "confidential"
    Then the pod VM has 1 vCPUs and 2048 MiB of memory

  @VM-005
  Scenario: DISABLECVM defaults to true: no launch security, whatever LIBVIRT_LAUNCH_SECURITY says
    Given peer-pods-cm sets LIBVIRT_LAUNCH_SECURITY to "sev-snp"
    When the cloud-api-adaptors restart
    And a peer pod "plain" is created in namespace "confidential"
    Then the pod is Running
    And the pod VM has no launch security

  @VM-005
  Scenario: On s390x the domain carries no launchSecurity element, even when s390-pv is asked for
    Given peer-pods-cm sets DISABLECVM to "false"
    And peer-pods-cm sets LIBVIRT_LAUNCH_SECURITY to "s390-pv"
    When the cloud-api-adaptors restart
    And a peer pod "secure" is created in namespace "confidential"
    Then the pod is Running
    And the pod VM has no launch security

  @VM-005
  Scenario: An unknown LIBVIRT_LAUNCH_SECURITY fails the pod's sandbox with upstream's message
    Given peer-pods-cm sets DISABLECVM to "false"
    And peer-pods-cm sets LIBVIRT_LAUNCH_SECURITY to "sev-snp"
    When the cloud-api-adaptors restart
    And a peer pod "unknown" is created in namespace "confidential"
    Then the pod never runs: its sandbox fails with a reason mentioning "[sev-snp] is not a known launch security setting"
    And no pod VM and no volume remains

  @VM-001
  Scenario: A long pod name is cut so the pod VM's name fits in 63 characters
    When a peer pod "a-pod-whose-name-is-far-too-long-for-a-libvirt-domain-of-sixty-three" is created in namespace "confidential"
    Then the pod VM is named "podvm-a-pod-whose-name-is-far-too-long-for-a-libvirt-d-" and 8 characters of its sandbox id

  @VM-009
  Scenario Outline: The root volume is the larger of LIBVIRT_ROOT_DISK_SIZE and the base image (<size>)
    Given peer-pods-cm sets LIBVIRT_ROOT_DISK_SIZE to "<size>"
    When the cloud-api-adaptors restart
    And a peer pod "disk" is created in namespace "confidential"
    Then the pod VM's root volume holds <gib> GiB

    Examples:
      | size | gib |
      |      | 10  |
      | 12   | 12  |

  @VM-004 @WH-012
  Scenario: A vCPU annotation of its own survives the webhook and is rounded up by Kata
    Given a pod "own-size" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated "io.katacontainers.config.hypervisor.default_vcpus" with "1.5"
    When the pod is created
    Then the pod is Running
    And the pod VM has 2 vCPUs and 8192 MiB of memory

  @VM-004
  Scenario: A sizing annotation Kata cannot read fails the sandbox, naming it
    Given a pod "garbled" in namespace "confidential" with runtimeClassName "kata-remote"
    And the pod is annotated "io.katacontainers.config.hypervisor.default_memory" with "lots"
    When the pod is created
    Then the pod never runs: its sandbox fails with a reason mentioning "default_memory"
    And no pod VM was requested

  @VM-006
  Scenario: Deleting the pod deletes its domain and its volumes
    When a peer pod "short-lived" is created in namespace "confidential"
    And pod "short-lived" in namespace "confidential" is deleted
    Then no pod VM and no volume remains

  @VM-007
  Scenario Outline: libvirt failing half-way through creation leaves nothing behind (<step>)
    Given libvirt fails while the pod VM's <step> is made
    When a peer pod "doomed" is created in namespace "confidential"
    Then the pod never runs: its sandbox fails with a reason mentioning "injected"
    And no pod VM and no volume remains, where upstream would leave <upstream>

    Examples:
      | step          | upstream                                       |
      | root-volume   | nothing                                        |
      | cidata-volume | the root volume                                |
      | define        | the root volume and the cloud-init ISO volume  |

  @VM-013
  Scenario: A restarted adaptor still starts new pod VMs while earlier ones run
    When a peer pod "earlier" is created in namespace "confidential"
    And the cloud-api-adaptors restart
    And a peer pod "later" is created in namespace "confidential"
    Then the pod is Running
    And pod "earlier" in namespace "confidential" is Running

  @VM-014 @needs-guest @needs-podvm-network
  Scenario: The pod VM boots its image from the boot volume, and its pod runs once the forwarder answers
    When a peer pod "booted" is created in namespace "confidential"
    Then the pod is Running
    And at once the pod VM holds a DHCP lease on its network, and its port 15150 accepts there
    And the pod VM boots from its boot volume through the firmware, with no kernel handed to it

  @VM-008 @needs-guest
  Scenario: A guest that never reports fails its pod's sandbox, and its domain is stopped
    Given the pod VMs' guests never report, and the provider waits 2 seconds
    When a peer pod "silent" is created in namespace "confidential"
    Then the pod never runs: its sandbox fails with a reason mentioning "did not report within 2 s"
    And the pod VM is not running
