"""Talking to the upstream provider: the endpoint (base URL, credential) and the transport that carries
bytes to it and back (connection pool, TLS, proxies, timeouts, size caps).

Owns the wire, never the meaning: no routing, no retries across targets, no knowledge of policy or of the
request's fields. May import only ``router.settings``, ``router.errors`` and ``router.observability``.
"""
