"""REST clients of the tclouds APIs on Tempest's RestClient (one module per API)."""
