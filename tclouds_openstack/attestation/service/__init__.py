"""The attestation service: registrar, verifier workers, REST API, state in oslo.db."""
