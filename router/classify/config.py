"""Classifier settings from ``policies/classifier.yaml``: typed, frozen, validated against the tier table.

Owns decoding the file. The rule engine of the policy issue will absorb these settings; until then this is
where ops set the cascade threshold, the Haiku call and which tier each complexity goes to.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import yaml

from router.classify.schema import COMPLEXITIES
from router.errors import ConfigError
from router.tiers import TierTable

CLASSIFIER_FILE = "classifier.yaml"


class HaikuPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    model: str = "claude-haiku-4-5"
    deadline_seconds: float = 1.5
    max_tokens: int = 200


class ClassifierPolicy(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str = "triage-local-v1"
    confidence_threshold: float = 0.5
    complexity_tiers: dict[str, str] = msgspec.field(
        default_factory=lambda: {"low": "haiku", "medium": "sonnet", "high": "opus"}
    )
    haiku: HaikuPolicy = msgspec.field(default_factory=HaikuPolicy)
    learning_sink: str | None = None


def load_classifier_policy(policies_dir: Path, tiers: TierTable) -> ClassifierPolicy:
    path = Path(policies_dir) / CLASSIFIER_FILE
    if not path.exists():
        return ClassifierPolicy()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        policy = msgspec.convert(data, ClassifierPolicy)
    except (yaml.YAMLError, msgspec.ValidationError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    problems = []
    if not 0.0 <= policy.confidence_threshold <= 1.0:
        problems.append("confidence_threshold must be within [0, 1]")
    if set(policy.complexity_tiers) != set(COMPLEXITIES):
        problems.append(f"complexity_tiers must map exactly {', '.join(COMPLEXITIES)}")
    for complexity, tier in policy.complexity_tiers.items():
        if tier not in tiers.tiers:
            problems.append(f"complexity_tiers.{complexity} names unknown tier {tier!r}")
    if policy.haiku.deadline_seconds <= 0 or policy.haiku.max_tokens <= 0:
        problems.append("haiku.deadline_seconds and haiku.max_tokens must be positive")
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems))
    return policy
