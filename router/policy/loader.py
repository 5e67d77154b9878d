"""Loading a policy directory: read every file, decode strictly, validate the whole set, or fail with
every problem found (file:line:column and a hint).

Owns which files make a policy and the resulting ``Policy`` object, the unit that hot reload swaps. A
policy is loaded whole or not at all: one bad file never yields a half-updated policy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from router.classify.config import ClassifierPolicy
from router.policy.model import RulesFile, Rule, TenantsFile
from router.policy.source import PolicyError, Position, Problem, SourceFile, convert, parse
from router.policy.validate import check_catalogue, check_classifier, check_rules, check_tenants, check_tiers
from router.policy.tiers import TierTable

TIERS, RULES, CLASSIFIER, TENANTS = "tiers.yaml", "rules.yaml", "classifier.yaml", "tenants.yaml"
KNOWN_FILES = (TIERS, RULES, CLASSIFIER, TENANTS)


def _builtin_rules() -> RulesFile:
    return msgspec.convert({"rules": [{"name": "default", "then": {"tier": "requested"}}]}, RulesFile)


class Policy(msgspec.Struct, frozen=True):
    tiers: TierTable
    rules: tuple[Rule, ...]
    classifier: ClassifierPolicy
    tenants: TenantsFile
    version: str
    """First 12 hex digits of the SHA-256 of the files' names and contents."""
    origins: dict[str, str]
    """Rule key (``name`` or ``tenant/name``) -> ``file:line`` where it is defined."""
    directory: str


def _read(directory: Path, name: str) -> str | None:
    path = directory / name
    if not path.exists():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError([Problem(Position(str(path), 1, 1), f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise PolicyError([Problem(Position(str(path), 1, 1), "not UTF-8 text")]) from None


def load_policy(directory: Path) -> Policy:
    """Load and validate the whole directory. Raises PolicyError listing every problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolicyError([Problem(Position(str(directory), 1, 1), "policy directory does not exist")])
    problems: list[Problem] = []
    for entry in sorted(directory.iterdir()):
        if entry.suffix in (".yaml", ".yml") and entry.name not in KNOWN_FILES:
            problems.append(
                Problem(Position(str(entry), 1, 1), f"unknown policy file {entry.name!r}", "known files: " + ", ".join(KNOWN_FILES))
            )
    texts = {name: _read(directory, name) for name in KNOWN_FILES}
    if texts[TIERS] is None:
        problems.append(Problem(Position(str(directory / TIERS), 1, 1), "missing: the tier table is required"))
        raise PolicyError(problems)
    sources: dict[str, SourceFile] = {}
    for name, text in texts.items():
        if text is None:
            continue
        try:
            sources[name] = parse(str(directory / name), text)
        except PolicyError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PolicyError(problems)

    def decode(name: str, kind: type, default: object) -> object:
        if name not in sources or sources[name].data is None:
            return default
        try:
            return convert(sources[name], kind)
        except PolicyError as exc:
            problems.extend(exc.problems)
            return None

    if sources[TIERS].data is None:
        problems.append(Problem(Position(str(directory / TIERS), 1, 1), "the tier table is empty", "define tiers and default_tier"))
    tiers = decode(TIERS, TierTable, None)
    rules_file = decode(RULES, RulesFile, _builtin_rules())
    classifier = decode(CLASSIFIER, ClassifierPolicy, ClassifierPolicy())
    tenants = decode(TENANTS, TenantsFile, TenantsFile())
    # Cross-file checks run on whatever decoded, so one typo does not hide problems in other files.
    if isinstance(tiers, TierTable):
        problems.extend(check_tiers(sources[TIERS], tiers))
        problems.extend(check_catalogue(sources[TIERS], tiers))
        if isinstance(rules_file, RulesFile) and RULES in sources and sources[RULES].data is not None:
            problems.extend(check_rules(sources[RULES], rules_file.rules, tiers))
        if isinstance(classifier, ClassifierPolicy) and CLASSIFIER in sources:
            problems.extend(check_classifier(sources[CLASSIFIER], classifier, tiers))
        if isinstance(tenants, TenantsFile) and TENANTS in sources:
            problems.extend(check_tenants(sources[TENANTS], tenants, tiers))
    if problems or not isinstance(tiers, TierTable):
        raise PolicyError(problems)
    assert isinstance(rules_file, RulesFile) and isinstance(classifier, ClassifierPolicy)
    assert isinstance(tenants, TenantsFile)
    return Policy(
        tiers=tiers,
        rules=rules_file.rules,
        classifier=classifier,
        tenants=tenants,
        version=_version(texts),
        origins=_origins(sources, rules_file, tenants),
        directory=str(directory),
    )


def _version(texts: dict[str, str | None]) -> str:
    digest = hashlib.sha256()
    for name in KNOWN_FILES:
        digest.update(name.encode() + b"\0" + (texts[name] or "").encode() + b"\0")
    return digest.hexdigest()[:12]


def _origins(sources: dict[str, SourceFile], rules: RulesFile, tenants: TenantsFile) -> dict[str, str]:
    origins: dict[str, str] = {}
    if RULES in sources and sources[RULES].data is not None:
        for index, rule in enumerate(rules.rules):
            position = sources[RULES].at(("rules", index))
            origins[rule.name] = f"{position.file}:{position.line}"
    else:
        origins["default"] = "<built-in>"
    if TENANTS in sources:
        for name, tenant in tenants.tenants.items():
            for index, rule in enumerate(tenant.rules):
                position = sources[TENANTS].at(("tenants", name, "rules", index))
                origins[f"{name}/{rule.name}"] = f"{position.file}:{position.line}"
    return origins
