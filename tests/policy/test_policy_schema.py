"""The JSON Schemas in policies/schema/ are what the policy types generate, and they accept the shipped
policy files and reject a typo'd key (the last part only when ``jsonschema`` happens to be installed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from router.policy.loader import KNOWN_FILES, load_policy
from router.policy.schema import REGENERATE, render, schema_name, schemas, write_schemas

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
SCHEMA_DIR = POLICIES / "schema"
POLICY_DIRS = [POLICIES, POLICIES / "examples" / "cost-saver", POLICIES / "examples" / "quality-first"]


def test_checked_in_schemas_match_the_policy_types() -> None:
    generated = {schema_name(name): render(schema) for name, schema in schemas().items()}
    on_disk = {path.name: path.read_text(encoding="utf-8") for path in sorted(SCHEMA_DIR.glob("*.json"))}
    stale = sorted(name for name in generated if on_disk.get(name) != generated[name])
    extra = sorted(set(on_disk) - set(generated))
    assert not stale and not extra, (
        f"policies/schema/ is out of date with the policy types (stale: {stale}, not generated: {extra}); "
        f"regenerate with `{REGENERATE}` and commit the result"
    )


def test_one_schema_per_policy_file_with_draft_title_and_description() -> None:
    generated = schemas()
    assert list(generated) == list(KNOWN_FILES)
    for schema in generated.values():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["title"] and schema["description"]
        assert schema["$ref"].removeprefix("#/$defs/") in schema["$defs"]


def test_every_struct_forbids_unknown_keys() -> None:
    for name, schema in schemas().items():
        for kind, definition in schema["$defs"].items():
            assert definition.get("additionalProperties") is False, f"{name}: {kind} allows unknown keys"


def test_write_schemas_is_deterministic(tmp_path: Path) -> None:
    first = write_schemas(tmp_path / "a")
    second = write_schemas(tmp_path / "b")
    assert [p.name for p in first] == [schema_name(n) for n in KNOWN_FILES]
    for a, b in zip(first, second, strict=True):
        text = a.read_text(encoding="utf-8")
        assert text == b.read_text(encoding="utf-8") and text.endswith("}\n") and not text.endswith("\n\n")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_schema_folder_is_not_mistaken_for_policy_files() -> None:
    policy = load_policy(POLICIES)
    assert policy.version and set(policy.tiers.tiers) == {"haiku", "sonnet", "opus"}


@pytest.mark.parametrize("directory", POLICY_DIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_policy_yaml_points_editors_at_its_schema(directory: Path) -> None:
    for path in sorted(directory.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), path
        target = (directory / first.split("$schema=", 1)[1]).resolve()
        assert target == SCHEMA_DIR / schema_name(path.name), path


@pytest.fixture(scope="module")
def validator_for():
    jsonschema = pytest.importorskip("jsonschema")

    def make(policy_file: str):
        schema = schemas()[policy_file]
        jsonschema.Draft202012Validator.check_schema(schema)
        return jsonschema.Draft202012Validator(schema)

    return make


@pytest.mark.parametrize("directory", POLICY_DIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_policy_files_validate_against_their_schema(validator_for, directory: Path) -> None:
    files = sorted(p for p in directory.glob("*.yaml"))
    assert files
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator_for(path.name).iter_errors(data)]
        assert not errors, f"{path}: {errors}"


@pytest.mark.parametrize(
    ("policy_file", "typo"),
    [
        ("tiers.yaml", lambda d: d["tiers"]["haiku"].update(fallbacks=["sonnet"])),
        ("tiers.yaml", lambda d: d.update(default_teir="sonnet")),
        ("rules.yaml", lambda d: d["rules"][0]["when"].update(categroy=["math"])),
        ("rules.yaml", lambda d: d["rules"][0]["then"].update(flor="sonnet")),
        ("classifier.yaml", lambda d: d["haiku"].update(deadline=2)),
    ],
)
def test_typo_in_a_key_is_rejected(validator_for, policy_file: str, typo) -> None:
    data = yaml.safe_load((POLICIES / policy_file).read_text(encoding="utf-8"))
    assert validator_for(policy_file).is_valid(data)
    typo(data)
    errors = list(validator_for(policy_file).iter_errors(data))
    assert errors and any("Additional properties are not allowed" in e.message for e in errors)


def test_tenants_schema_accepts_a_tenant_and_rejects_a_typo(validator_for) -> None:
    tenant = {
        "keys": ["sha256:" + "0" * 64],
        "allowed_tiers": ["haiku", "sonnet"],
        "rules": [{"name": "cheap", "then": {"tier": "haiku"}}],
        "rate_limit": {"requests_per_minute": 60},
        "budget": {"monthly_usd": 100, "on_exceeded": "downgrade", "downgrade_tier": "haiku"},
    }
    validator = validator_for("tenants.yaml")
    assert validator.is_valid({"tenants": {"team-a": tenant}, "open_mode": False})
    assert not validator.is_valid({"tenants": {"team-a": {**tenant, "budjet": {"monthly_usd": 1}}}})
    assert not validator.is_valid({"tenant": {}})
