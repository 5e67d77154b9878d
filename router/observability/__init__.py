"""Metrics definitions (prometheus-client, one registry per app) and logging setup.

Owns metric names, labels and buckets and the log format. Imports nothing from the rest of the router but
``router.errors`` and ``router.settings``: every other layer records into it.
"""
