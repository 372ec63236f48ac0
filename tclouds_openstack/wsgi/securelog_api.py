"""WSGI entry point of the secure log API: ``tclouds_openstack.wsgi.securelog_api:application``.

The API only reads the store; an event POSTed to it is sealed by this service as its own
source and sent through the bus to the ingestion service, like any notification.
"""
from tclouds_openstack import wsgi

PROG = 'tclouds-securelog-api'


def build(conf):
    import oslo_messaging

    from tclouds_openstack.common import messaging
    from tclouds_openstack.securelog import api
    from tclouds_openstack.securelog import source
    from tclouds_openstack.securelog import store
    oslo_messaging.set_transport_defaults('openstack')
    if not conf.securelog.source_name:
        conf.set_override('source_name', source.default_source_name('securelog-api'),
                          group='securelog')
    publisher = oslo_messaging.Notifier(messaging.get_notification_transport(conf),
                                        publisher_id='securelog-api', driver='securelog')
    return api.build_app(conf, store.SecureLogStore.from_conf(conf), publisher)


application = wsgi.LazyApplication(PROG, build)
