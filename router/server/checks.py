"""What a policy must pass before it serves: the same checks at start-up and on every hot reload.

Owns the checks that go beyond the policy files themselves (the loader validates those): the classifier
artifact the policy names exists and loads, the bind guard (no keyless router on a network address), and
the checks only a reload can fail -- a reload must not switch authentication off by losing every tenant,
and must not edit settings that are read once at start-up (the Haiku client, the local model, the
learning sink) and would otherwise be reported as applied while being ignored. Pure functions of
settings and policies; they raise ``ConfigError`` with a message naming the file and field.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from router.classify.local import load as load_local_model
from router.errors import ConfigError
from router.policy.loader import CLASSIFIER, TENANTS, Policy
from router.settings import Settings
from router.tenancy.tenants import check_bind

# Classifier settings built into the process at start-up (``router.classify.service.build_triage``); the
# others (confidence_threshold, complexity_tiers) are read from the current policy per request.
RESTART_FIELDS = ("model", "haiku", "learning_sink")


def startup_checks(settings: Settings, policy: Policy) -> None:
    """Everything a loaded policy must pass to be served on ``settings``. Raises ``ConfigError``."""
    where = f"{Path(policy.directory) / CLASSIFIER}: model {policy.classifier.model!r}"
    try:
        load_local_model(settings.models_dir, policy.classifier.model)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except (OSError, ValueError, KeyError) as exc:  # a missing .npz, a truncated or foreign archive
        raise ConfigError(f"{where}: cannot load the artifact from {settings.models_dir}: {type(exc).__name__}") from None
    check_bind(settings.host, policy.tenants)
    if settings.admin_port is not None:
        check_bind(settings.admin_host, policy.tenants)


def reload_checks(settings: Settings, served: Policy, candidate: Policy) -> None:
    """Whether ``candidate`` may replace the ``served`` policy. Raises ``ConfigError`` to refuse it."""
    startup_checks(settings, candidate)
    tenants_file = Path(candidate.directory) / TENANTS
    if served.tenants.tenants and not candidate.tenants.tenants and not candidate.tenants.open_mode:
        raise ConfigError(
            f"{tenants_file}: the new policy has no tenants, which would accept any key (open mode); refused and "
            f"still requiring keys. Restore the tenants, or set 'open_mode: true' in {TENANTS} to accept any key "
            "on purpose"
        )
    changed = [field for field in RESTART_FIELDS if getattr(served.classifier, field) != getattr(candidate.classifier, field)]
    if "haiku" in changed:  # name the exact sub-field ops edited
        old, new = served.classifier.haiku, candidate.classifier.haiku
        at = changed.index("haiku")
        changed[at : at + 1] = [f"haiku.{f}" for f in old.__struct_fields__ if getattr(old, f) != getattr(new, f)]
    if changed:
        raise ConfigError(
            f"{Path(candidate.directory) / CLASSIFIER}: {', '.join(repr(f) for f in changed)} changed; "
            "read only at start-up, so this reload is refused and the old value keeps serving. Restart the "
            "router to apply the edit"
        )


def reload_check(settings: Settings) -> Callable[[Policy, Policy], None]:
    """``reload_checks`` bound to the process's settings, in the shape ``PolicyStore(check=...)`` takes."""
    return lambda served, candidate: reload_checks(settings, served, candidate)
