"""A tclouds WSGI application served over real HTTP from a thread of the test process."""
import contextlib
import threading

from tclouds_openstack.common import wsgi


@contextlib.contextmanager
def serving(app):
    """Serve ``app`` with the standalone server on a free port of 127.0.0.1.

    Yields the base URL; the server is shut down, closed and its thread joined on exit.
    """
    server = wsgi.make_server(app, '127.0.0.1', 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_port
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
