"""Ops policy: the files in ``policies/`` -- tier and model table, routing rules, classifier settings,
tenants -- decoded strictly, validated with file:line:column errors, evaluated by pure functions."""
