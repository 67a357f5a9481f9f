"""The checkout's pytest wiring: ``pytest steps --target ...`` loads the package's plugin."""

pytest_plugins = ["sim.pytest_plugin"]
