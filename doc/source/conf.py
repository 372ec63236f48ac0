"""Sphinx configuration for the tclouds-openstack documentation."""
project = 'tclouds-openstack'
copyright = '2026, tclouds-openstack developers'
extensions = [
    'oslo_config.sphinxext',
    'oslo_policy.sphinxext',
]
master_doc = 'index'
exclude_patterns = ['_build']
html_theme = 'alabaster'
html_static_path = ['_static']
# The configuration reference is generated from the code (oslo_config.sphinxext).
config_generator_config_file = None


def _fix_group_help_indent():
    """Indent group help like the directive's options (3 spaces), not 2.

    oslo.config 10.7's sphinxext indents an OptGroup's help by 2 spaces under a directive
    whose ``:namespace:`` option is indented by 3, so docutils reads the option as part of
    the arguments ("maximum 1 argument(s) allowed, 3 supplied"). Remove when fixed upstream.
    """
    from oslo_config import sphinxext

    original = sphinxext._format_group

    def _format_group(namespace, group_name, group_obj):
        for line in original(namespace, group_name, group_obj):
            yield ' ' + line if line.startswith('  ') and not line.startswith('   ') else line

    sphinxext._format_group = _format_group


_fix_group_help_indent()
