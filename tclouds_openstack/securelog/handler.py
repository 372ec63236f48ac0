"""A ``logging.Handler`` that seals log records into the secure log.

Usable from oslo.log's ``log_config_append`` (a logging.config file)::

    [handlers]
    keys = securelog
    [handler_securelog]
    class = tclouds_openstack.securelog.handler.SecureLogHandler
    args = ('/etc/tclouds/tclouds.conf',)
    level = WARNING

Records travel exactly like notifications (the ``securelog`` driver: seal, spool, publish
on ``[securelog] topic``), under ``[securelog] source_name`` (default
``<program>-log@<hostname>``). Records of the messaging stack itself are not sealed (they
would recurse while the bus is down); a record that cannot be sealed is reported through
``handleError`` and never raises into the application.
"""
import logging
import threading

_IGNORED_PREFIXES = ('oslo.messaging', 'oslo_messaging', 'kombu', 'amqp',
                     'tclouds_openstack.securelog')


class SecureLogHandler(logging.Handler):
    def __init__(self, config_file=None, source_name=None, level=logging.NOTSET,
                 conf=None, transport=None):
        super().__init__(level)
        self._config_file = config_file
        self._source_name = source_name
        self._conf = conf
        self._transport = transport
        self._driver = None
        self._local = threading.local()
        self._init_lock = threading.Lock()

    def _get_driver(self):
        with self._init_lock:
            if self._driver is None:
                from oslo_config import cfg
                import oslo_messaging

                from tclouds_openstack.conf import securelog as securelog_conf
                from tclouds_openstack.securelog import driver
                from tclouds_openstack.securelog import source
                conf = self._conf
                if conf is None:
                    conf = cfg.ConfigOpts()
                    securelog_conf.register_opts(conf)
                    # the named file only: never /etc/tclouds/tclouds.conf.d beside it
                    conf([], project='tclouds', default_config_files=(
                        [self._config_file] if self._config_file else []),
                        default_config_dirs=[])
                securelog_conf.register_opts(conf)
                name = self._source_name or conf.securelog.source_name or \
                    source.default_source_name('%s-log' % source.process_component())
                conf.set_override('source_name', name, group='securelog')
                transport = self._transport or \
                    oslo_messaging.get_notification_transport(conf)
                self._driver = driver.SecureLogDriver(conf, [], transport)
            return self._driver

    def emit(self, record):
        if record.name.startswith(_IGNORED_PREFIXES) or getattr(self._local, 'busy', False):
            return
        self._local.busy = True
        try:
            message = {'event_type': 'log.%s' % record.levelname.lower(),
                       'publisher_id': record.name,
                       'timestamp': self.formatter.formatTime(record) if self.formatter
                       else None,
                       'payload': {'logger': record.name, 'level': record.levelname,
                                   'message': record.getMessage(),
                                   'module': record.module, 'lineno': record.lineno,
                                   'process': record.process,
                                   'exception': self.format_exception(record)},
                       'message_id': None}
            self._get_driver().notify({}, message, record.levelname, None)
        except Exception:
            self.handleError(record)
        finally:
            self._local.busy = False

    @staticmethod
    def format_exception(record):
        if record.exc_info:
            return logging.Formatter().formatException(record.exc_info)
        return None
