"""Verification and demonstration tools: soak, benchmarks, invariants, fairness, demo, pay."""
