"""Swift proxy middlewares of tclouds-openstack (one module per middleware)."""
