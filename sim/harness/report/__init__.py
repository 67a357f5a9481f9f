"""The run's results and the certification report built from them."""
