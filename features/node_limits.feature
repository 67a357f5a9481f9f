@needs-cluster
Feature: Peer pod VMs are limited per node by the extended resource kata.peerpods.io/vm
  The total number of peer pod VMs is defined as a Kubernetes node extended resource,
  kata.peerpods.io/vm. The limit is per node and is set by PEERPODS_LIMIT_PER_NODE in the
  peer-pods-cm config map; the Kubernetes scheduler does the capacity tracking and
  accounting. Worker-node CPU and memory are handled by the pod overhead of the
  kata-remote RuntimeClass. (Source document, section 4.1.2.)

  Background:
    Given a namespace "workloads"

  @NL-001
  Scenario: Without PEERPODS_LIMIT_PER_NODE each node advertises 10 pod VMs
    Given peer-pods-cm does not set PEERPODS_LIMIT_PER_NODE
    And a worker node "worker-0"
    Then node "worker-0" advertises 10 "kata.peerpods.io/vm"

  @NL-001 @NL-002
  Scenario: A node runs as many peer pods as its limit, and the next one waits
    Given peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "3"
    And a worker node "worker-0"
    When 4 peer pods are created in namespace "workloads"
    Then node "worker-0" advertises 3 "kata.peerpods.io/vm"
    And 3 of them are Running
    And 1 of them is Pending because of "Insufficient kata.peerpods.io/vm"

  @NL-002 @NL-003
  Scenario: Deleting a peer pod frees its unit for the pod that waits
    Given peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "2"
    And a worker node "worker-0"
    When 3 peer pods are created in namespace "workloads"
    And the first of them is deleted
    Then 2 of them are Running
    And node "worker-0" has 2 "kata.peerpods.io/vm" allocated

  @NL-004
  Scenario: The limit applies to each node
    Given peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "2"
    And 3 worker nodes
    When 7 peer pods are created in namespace "workloads"
    Then 6 of them are Running
    And 1 of them is Pending because of "Insufficient kata.peerpods.io/vm"
    And every node has 2 "kata.peerpods.io/vm" allocated

  @NL-005
  Scenario: A negative limit advertises nothing, so no peer pod can be scheduled
    Given peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "-1"
    And a worker node "worker-0"
    When a peer pod "homeless" is created in namespace "workloads"
    Then node "worker-0" does not advertise "kata.peerpods.io/vm" at all
    And pod "homeless" in namespace "workloads" is Pending because of "Insufficient kata.peerpods.io/vm"

  @NL-006
  Scenario: A changed limit takes effect when the cloud-api-adaptor restarts
    Given peer-pods-cm sets PEERPODS_LIMIT_PER_NODE to "1"
    And a worker node "worker-0"
    When peer-pods-cm is changed to set PEERPODS_LIMIT_PER_NODE to "5"
    Then node "worker-0" advertises 1 "kata.peerpods.io/vm"
    When the cloud-api-adaptors restart
    Then node "worker-0" advertises 5 "kata.peerpods.io/vm"

  @NL-007
  Scenario: The RuntimeClass overhead accounts for the worker node's share
    Given a worker node "worker-0"
    When a peer pod "overhead" is created in namespace "workloads"
    Then pod "overhead" in namespace "workloads" carries the pod overhead "cpu=250m,memory=120Mi"
    And node "worker-0" has "cpu" "250m" allocated
    And node "worker-0" has "memory" "120Mi" allocated
