"""Who is calling: router API key -> tenant, the tiers a tenant may use, and the bind-address guard.

Owns the per-policy-version
``TenantDirectory`` that resolves a presented key to a tenant, and ``check_bind``, which refuses to serve a
keyless router on a network address. It must never log, store or echo a plaintext key: exception messages
name at most the tenant (a name ops chose in ``tenants.yaml``), never the key or its hash.
"""

from __future__ import annotations

import ipaddress

import msgspec

from router.errors import AuthenticationFailed, ConfigError
from router.policy.keys import hash_key, is_key_hash
from router.policy.model import Tenant, TenantsFile

ANONYMOUS = "anonymous"
"""The tenant name of requests admitted by open mode (or by a router with no tenants, loopback only)."""

_UNAUTHORIZED = "invalid router API key: send a key configured in tenants.yaml in x-api-key or Authorization: Bearer"


class TenantView(msgspec.Struct, frozen=True):
    """The caller of one request. ``tenant`` is None for ``anonymous`` (no limits, no budget, every tier)."""

    name: str
    tenant: Tenant | None = None


class TenantDirectory:
    """Key hash -> tenant for one policy version; build it when a policy loads, never per request.

    Lookup hashes the presented key once and does one dict lookup. A constant-time comparison is not needed:
    what a timing side channel could reveal is how much of the *SHA-256 digest* of a guess matches a stored
    digest, and knowing digest bytes does not help anyone find a key that produces them (preimage resistance).
    """

    def __init__(self, tenants: TenantsFile) -> None:
        by_hash: dict[str, str] = {}
        for name, tenant in tenants.tenants.items():
            for index, key_hash in enumerate(tenant.keys):
                # Policy validation should catch these first; checking here keeps a bad entry from silently
                # never matching. Messages give positions, not the hashes.
                if not is_key_hash(key_hash):
                    raise ConfigError(
                        f"tenants.yaml: tenant {name!r} key #{index + 1} is not 'sha256:' + 64 lowercase hex "
                        "digits; produce it with 'router policy hash-key'"
                    )
                other = by_hash.setdefault(key_hash, name)
                if other != name:
                    raise ConfigError(f"tenants.yaml: tenants {other!r} and {name!r} share a key")
        self._by_hash = by_hash
        self._tenants = dict(tenants.tenants)
        # With no tenants at all the router can only be serving on loopback (``check_bind``): the local demo,
        # where any key is accepted as before tenants existed.
        self.open_mode = tenants.open_mode or not tenants.tenants

    def resolve(self, presented_key: str | None) -> TenantView:
        """The tenant a key belongs to; ``anonymous`` for unknown or missing keys in open mode.

        Raises ``AuthenticationFailed`` (401) otherwise, with a message that does not echo the key.
        """
        if presented_key:
            name = self._by_hash.get(hash_key(presented_key))
            if name is not None:
                return TenantView(name, self._tenants[name])
        if self.open_mode:
            return TenantView(ANONYMOUS, None)
        raise AuthenticationFailed(_UNAUTHORIZED)

    def names(self) -> frozenset[str]:
        """The configured tenant names (for pruning per-tenant state after a reload)."""
        return frozenset(self._tenants)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1, ``localhost``).

    Other host names count as non-loopback: resolving them here could not prove where the socket binds.
    """
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def check_bind(host: str, tenants: TenantsFile) -> None:
    """Refuse to serve a router that accepts any key on an address other machines can reach.

    Loopback without tenants is the local demo and allowed; anywhere else needs tenants or explicit open mode.
    """
    if tenants.tenants or tenants.open_mode or is_loopback(host):
        return
    raise ConfigError(
        f"refusing to serve on {host!r} with no tenants configured: anyone who can reach this address could "
        "spend your Anthropic key. Add tenants with hashed keys to policies/tenants.yaml (hash a key with "
        "'router policy hash-key'), set 'open_mode: true' in tenants.yaml to accept any key on purpose, "
        "or bind to 127.0.0.1"
    )
