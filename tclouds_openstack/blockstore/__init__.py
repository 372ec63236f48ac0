"""Protected block storage: per-sector AES-256-GCM with a Merkle tree for freshness.

``format`` is the pure on-disk format (header, layout, the ``Volume`` read/write/flush
logic); ``merkle`` the hash tree; ``storage`` the file and anchor adapters;
``nbd_plugin`` the nbdkit Python plugin that serves the decrypted, verified view.
"""
