"""Tempest plugin of tclouds-openstack (entry point ``tempest.test_plugins``: ``tclouds``).

Layout as Tempest's plugin guide recommends: ``config.py`` (service availability and the
``[tclouds]`` feature group), ``services/`` (REST clients on Tempest's RestClient),
``api/`` (one API at a time, through real Keystone tokens per persona) and ``scenario/``
(capabilities end to end through Nova, Cinder and Swift).

It imports only Tempest and the standard library (plus ``tclouds_openstack.securelog``'s
pure verification code), so it installs into Tempest's virtualenv without the service's
dependencies: ``pip install --no-deps -e <checkout>``.
"""
