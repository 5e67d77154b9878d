"""The forwarding pipeline for one request: request view, facts, plan, dispatch with fallback, the stream
relay and its commit point, replies and headers, and what gets recorded about it.

Owns the order of those steps and the decisions between them (``plan`` is a pure function). May import
``router.policy``, ``router.tenancy``, ``router.classify``, ``router.upstream`` and below; never
``router.server`` or ``router.cli``. Outside this package, nothing imports ``router.gateway.dispatch``
internals (the pipeline, explain and the services container are the public faces).
"""
