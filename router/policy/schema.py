"""JSON Schema for the policy files, generated from the types the loader decodes them into.

Owns one schema per policy file (``tiers.yaml`` -> ``TierTable``, ``rules.yaml`` -> ``RulesFile``,
``classifier.yaml`` -> ``ClassifierPolicy``, ``tenants.yaml`` -> ``TenantsFile``) and writing them to
``policies/schema/<stem>.schema.json`` so editors validate policy files as ops type (the YAML language
server reads a first-line ``# yaml-language-server: $schema=schema/<stem>.schema.json`` comment).

The schemas cover shape only: keys, types, required fields, and ``additionalProperties: false`` for every
struct (the types forbid unknown fields, so a typo'd key is flagged in the editor as it is by the loader).
Cross-field checks -- known tiers, label names, ranges, the default rule -- stay with ``router policy
check`` / ``load_policy``.

Regenerate after changing a policy type::

    python -m router.policy.schema            # writes policies/schema/*.schema.json
    python -m router.policy.schema OUT_DIR    # or somewhere else
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from router.classify.config import ClassifierPolicy
from router.policy.loader import CLASSIFIER, KNOWN_FILES, RULES, TENANTS, TIERS
from router.policy.model import RulesFile, TenantsFile
from router.policy.tiers import TierTable

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "policies" / "schema"
"""Where the checked-in schemas live: ``policies/schema`` of this checkout."""
REGENERATE = "python -m router.policy.schema"

_FILES: dict[str, tuple[type, str, str]] = {
    TIERS: (
        TierTable,
        "Router tier table (policies/tiers.yaml)",
        "Tiers cheapest first, each with its models (the first is the one it sends to) and fallback tiers; "
        "default tier, retry wait, cooldown, and per-model prices and limits. See policies/README.md.",
    ),
    RULES: (
        RulesFile,
        "Router routing rules (policies/rules.yaml)",
        "Ordered rules: the first whose 'when' holds decides; the last rule has no 'when' and catches "
        "every request. See policies/README.md.",
    ),
    CLASSIFIER: (
        ClassifierPolicy,
        "Router triage classifier settings (policies/classifier.yaml)",
        "Local model, confidence threshold for asking Claude Haiku, the tier for each complexity, the "
        "Haiku call and the optional learning sink. See policies/README.md.",
    ),
    TENANTS: (
        TenantsFile,
        "Router tenants (policies/tenants.yaml)",
        "Tenants with hashed router keys, allowed tiers, rule overrides, rate limits and monthly budgets; "
        "open mode. See policies/README.md.",
    ),
}
assert tuple(_FILES) == KNOWN_FILES, "every policy file the loader knows needs a schema"


def schema_name(policy_file: str) -> str:
    """``tiers.yaml`` -> ``tiers.schema.json``."""
    return Path(policy_file).stem + ".schema.json"


def schemas() -> dict[str, dict[str, Any]]:
    """Policy file name -> its JSON Schema (draft 2020-12), from the type the loader decodes it into."""
    out: dict[str, dict[str, Any]] = {}
    for name, (kind, title, description) in _FILES.items():
        schema = msgspec.json.schema(kind)
        out[name] = {"$schema": DRAFT, "title": title, "description": description, **schema}
    return out


def render(schema: dict[str, Any]) -> str:
    """The exact text written for a schema: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write ``<stem>.schema.json`` for every policy file into ``directory`` (created if missing).
    Returns the paths written, in policy-file order. Deterministic: same types, same bytes."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, schema in schemas().items():
        path = directory / schema_name(name)
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        print(f"usage: {REGENERATE} [DIRECTORY]   (default: {SCHEMA_DIR})", file=sys.stderr)
        return 2
    directory = Path(args[0]) if args else SCHEMA_DIR
    for path in write_schemas(directory):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
