"""Ops policy: the files in ``policies/`` -- tier and model table, routing rules, classifier settings,
tenants -- decoded strictly, validated with file:line:column errors, evaluated by pure functions.

Owns decoding, validation, the tier table and prices, hot reload and the policy store. May import
``router.classify`` (its label sets and settings schema), ``router.errors`` and ``router.settings``; never
the gateway, tenancy state or the server.
"""
