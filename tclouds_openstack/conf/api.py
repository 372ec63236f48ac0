"""Options shared by the REST APIs of the tclouds services."""
from oslo_config import cfg

from tclouds_openstack.conf import base

api_group = cfg.OptGroup('api', title='REST API', help='Options of every tclouds REST API.')

api_opts = [
    cfg.StrOpt('auth_strategy',
               default='keystone',
               choices=[('keystone', 'Validate tokens with keystonemiddleware auth_token '
                                     '(configure [keystone_authtoken]).'),
                        ('noauth', 'Trust X-Roles / X-Project-Id / X-User-Id headers. Only for '
                                   'the embedded demo and tests: never expose such an API.')],
               help='How API requests are authenticated.'),
    cfg.IntOpt('max_request_body_size',
               default=1024 * 1024,
               min=1024,
               help='Largest request body accepted, in bytes; larger requests get HTTP 413.'),
    cfg.IntOpt('workers',
               default=16,
               min=1,
               help='Threads answering complete requests in the standalone API server '
                    '(``tclouds-*-api`` commands; under uwsgi or mod_wsgi their own settings '
                    'apply). Connections still sending their request hold no thread.'),
    cfg.IntOpt('client_socket_timeout',
               default=60,
               min=1,
               help='Seconds a client of the standalone API server has, from connecting, to '
                    'send its complete request; and to read each part of the answer. Slower '
                    'or idle connections are closed.'),
    cfg.IntOpt('max_connections',
               default=1024,
               min=1,
               help='Connections the standalone API server holds while their requests '
                    'arrive; when full, the oldest is closed to make room (keep it below the '
                    'process\'s open file limit).'),
]


def register_opts(conf):
    base.register(conf, api_group, api_opts)


def list_opts():
    return [(api_group, api_opts)]
