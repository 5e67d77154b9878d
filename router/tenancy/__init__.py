"""Who is calling and what they may spend: tenants from keys, rate limits (token buckets), monthly budgets,
and admission/settlement around each request.

Owns the tenancy state and the checks on it (reserve before dispatch, settle after), kept in process memory
(the ledger persisted to SQLite) or shared on Redis through ``router.state``. Reads the policy (``router.policy``) for the limits; never
imports ``router.gateway`` or ``router.server``.
"""
