"""Request context: who is calling, built from keystonemiddleware's identity headers."""
from oslo_context import context


class RequestContext(context.RequestContext):
    """oslo.context with nothing added; policy checks use ``to_policy_values()``."""


def from_environ(environ):
    """Build the context of a WSGI request that passed keystonemiddleware (or noauth)."""
    return RequestContext.from_environ(environ)


def get_admin_context():
    """A context for internal calls (periodic tasks, workers)."""
    return RequestContext(is_admin=True, roles=['admin'], overwrite=False)
