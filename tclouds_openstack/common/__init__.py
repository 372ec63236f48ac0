"""Common service plumbing: exceptions, context, database, messaging, policy, WSGI."""
