"""Attestation-gated key release: castellan driver ``tclouds`` and the key release API.

This package's modules keep their top-level imports light: castellan instantiates every
installed ``castellan.drivers`` plugin while ``nova.conf`` is imported.
"""
