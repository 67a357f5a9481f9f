"""The checkout's pytest wiring: ``pytest steps --target ...`` loads the package's plugin."""

pytest_plugins = ["sim.harness.pytest_plugin"]
