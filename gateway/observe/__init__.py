"""Observability: structured logs and metrics that never carry PHI (DESIGN decision 9)."""
