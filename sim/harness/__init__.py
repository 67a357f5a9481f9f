"""The conformance harness: what runs the features against a target and reports on them.

* :mod:`sim.harness.catalogue`: the requirement catalogue (``features/requirements.yaml``);
* :mod:`sim.harness.targets`: the systems under test, each behind capability protocols
  (the ``cluster`` target's package holds the real control plane it starts);
* :mod:`sim.harness.pytest_plugin`: the pytest and pytest-bdd wiring;
* :mod:`sim.harness.report`: the result files and the certification report;
* :mod:`sim.harness.cli`: the ``peerpods-conformance`` command;
* :mod:`sim.harness.difftest`: differential testing of a webhook against the reference.
"""
