"""Attestation: host agent, appraisal, verifier service and backends."""
