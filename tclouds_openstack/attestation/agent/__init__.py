"""Code that runs on a compute host, next to its TPM (tpm2-pytss, swtpm in development)."""
