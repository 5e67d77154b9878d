"""Router API keys as policy files hold them: ``sha256:`` + the hex digest, never the key itself.

Owns the hash form, the check that a string has it, and the ``router policy hash-key`` helper that refuses
short (guessable) keys. Validation, the tenant directory and the admin endpoint all use these.
"""

from __future__ import annotations

import hashlib
import re

from router.errors import ConfigError

KEY_HASH_PREFIX = "sha256:"
_KEY_HASH = re.compile(r"sha256:[0-9a-f]{64}")

# Unsalted SHA-256 is only sound for random, high-entropy keys (not passwords): refuse to hash short ones so
# a guessable key never ends up in a policy file.
MIN_KEY_LENGTH = 20


def hash_key(key: str) -> str:
    """The policy-file form of a router API key: ``sha256:`` + the hex digest of its UTF-8 bytes."""
    return KEY_HASH_PREFIX + hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_key_hash(text: str) -> bool:
    """Whether ``text`` has the form ``hash_key`` produces (``sha256:`` + 64 lowercase hex digits)."""
    return _KEY_HASH.fullmatch(text) is not None


def hash_key_command(key: str) -> str:
    """``router policy hash-key``: the line to paste into a tenant's ``keys`` list.

    Surrounding whitespace is dropped because the router strips it from the presented header too, so a key
    read from a file with a trailing newline still matches.
    """
    key = key.strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigError(
            f"a router API key must be at least {MIN_KEY_LENGTH} characters of random text; generate one with: "
            "python3 -c \"import secrets; print('sk-router-' + secrets.token_urlsafe(32))\""
        )
    return hash_key(key)
