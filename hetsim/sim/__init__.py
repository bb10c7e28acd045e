"""What really happens: the SimPy engine that executes a Schedule and records a Trace."""
