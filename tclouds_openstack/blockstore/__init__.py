"""Protected block storage: per-sector AES-256-GCM with a Merkle tree for freshness.

``format`` is the pure on-disk format (format 2: layout, on-disk tree and cache, journal,
the ``Volume`` read/write/flush/rotation logic); ``header`` the volume header, data keys and
anchor MAC; ``format_v1`` the read-only reader of format 1 volumes; ``merkle`` the in-memory
tree format 1 uses; ``storage`` the file and anchor adapters; ``nbd_plugin`` the nbdkit
Python plugin that serves the decrypted, verified view; ``encryptor`` the os-brick
encryptor; ``notify`` the integrity events and notifications.
"""
