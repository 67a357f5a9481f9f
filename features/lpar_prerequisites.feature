@needs-lpar-host
Feature: The LPAR meets the prerequisites of confidential containers on IBM Z
  Peer pods on IBM Z run their pod VMs on a logical partition (LPAR) of a LinuxONE
  Emperor 4 or later, with the Secure Unpack Facility enabled for IBM Secure Execution
  (source document, section 4.1.1). An LPAR is judged by what its KVM host shows:
  /proc/sysinfo (machine type), the kernel's prot_virt=1, /sys/firmware/uv/prot_virt_host
  and libvirt's domain capabilities (<s390-pv supported='yes'/>).
  The scenarios on a described LPAR judge its description; the one on the target's own LPAR
  (@each-lpar) runs once on each LPAR of a run over several.

  @LP-001
  Scenario Outline: <machine> with Secure Execution meets every prerequisite
    Given the LPAR described in "<description>"
    When its LPAR prerequisites are checked
    Then every LPAR prerequisite is satisfied

    Examples:
      | machine                     | description                     |
      | a LinuxONE Emperor 4 (3931) | fixtures/lpar/emperor4-se.yaml  |
      | a LinuxONE Emperor 5 (9175) | fixtures/lpar/emperor5-se.yaml  |

  @LP-002
  Scenario: An IBM z15 LPAR is refused for its machine, not for Secure Execution
    Given the LPAR described in "fixtures/lpar/z15-se.yaml"
    When its LPAR prerequisites are checked
    Then the "machine type" prerequisite fails mentioning "Emperor 4 or later"
    And the "Secure Unpack Facility (prot_virt)" prerequisite is satisfied
    And the "libvirt s390-pv launch security" prerequisite is satisfied

  @LP-003
  Scenario: An Emperor 4 LPAR without the Secure Unpack Facility fails the Secure Execution prerequisites
    Given the LPAR described in "fixtures/lpar/emperor4-se-off.yaml"
    When its LPAR prerequisites are checked
    Then the "machine type" prerequisite is satisfied
    And the "Secure Unpack Facility (prot_virt)" prerequisite fails mentioning "prot_virt=1 missing"
    And the "libvirt s390-pv launch security" prerequisite fails mentioning "supported='no'"

  @LP-004 @needs-guest @each-lpar
  Scenario: The emulated LPAR is judged on what QEMU really offers
    Given the target's own LPAR
    When its LPAR prerequisites are checked
    Then the "machine type" prerequisite fails mentioning "8561"
    And the "libvirt s390-pv launch security" prerequisite fails mentioning "supported='no'"
    And the target names what the emulated LPAR cannot show

  @LP-005
  Scenario: A machine type the table does not know is reported as unknown, naming the table
    Given the LPAR described in "fixtures/lpar/unknown-machine.yaml"
    When its LPAR prerequisites are checked
    Then the "machine type" prerequisite fails mentioning "9999 is unknown"
    And the "machine type" prerequisite fails mentioning "table of IBM Z machine types"
