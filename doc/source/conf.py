"""Sphinx configuration for the tclouds-openstack documentation."""
project = 'tclouds-openstack'
copyright = '2026, tclouds-openstack developers'
extensions = [
    'oslo_config.sphinxext',
]
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
html_static_path = ['_static']
# The configuration reference is generated from the code (oslo_config.sphinxext).
config_generator_config_file = None
