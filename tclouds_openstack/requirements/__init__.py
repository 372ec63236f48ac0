"""ACaaS: tenant security requirements (trusted host, jurisdictions), their storage and API."""
