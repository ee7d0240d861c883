"""Issue 5: the simulator against a real Envoy (experiments, report writer); the harness is meshsim.conformance."""
