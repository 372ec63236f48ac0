"""Sphinx configuration for the tclouds-openstack release notes (reno)."""
project = 'tclouds-openstack Release Notes'
copyright = '2026, tclouds-openstack developers'
extensions = ['reno.sphinxext']
master_doc = 'index'
html_theme = 'alabaster'
html_static_path = ['_static']
