"""OpenStackClient v1 commands of tclouds-openstack."""
