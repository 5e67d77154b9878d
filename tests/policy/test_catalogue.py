"""The model catalogue in ``tiers.yaml``: every id the SDK knows is placed, priced and given its lifecycle;
snapshots, aliases and next-generation ids reach their tier through the lookups the gateway already makes;
retired models are refused by validation; deprecation warnings use the right tense, once per process."""

from __future__ import annotations

import logging
import time
import typing
from datetime import date
from pathlib import Path

import pytest
from anthropic.types.model import Model

from router.gateway.plan import Target, plan
from router.policy.loader import load_policy
from router.policy.pricing import cost_usd
from router.policy.rules import Facts
from router.policy.source import PolicyError
from tests.conftest import POLICIES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_DIRS = [POLICIES, *sorted(p for p in (POLICIES / "examples").iterdir() if p.is_dir())]


def sdk_model_ids() -> list[str]:
    literal, _ = typing.get_args(Model)
    return list(typing.get_args(literal))


def facts(model: str) -> Facts:
    return Facts(model=model, input_tokens=10, max_tokens=100, tools=False, images=False, documents=False,
                 thinking=False, stream=False, betas=(), hint=None, tenant=None, classification=None)


@pytest.fixture(scope="module")
def table():
    return load_policy(POLICIES).tiers


def copy_with_tiers(tmp_path: Path, text: str) -> Path:
    target = tmp_path / "policies"
    target.mkdir()
    for name in ("rules.yaml", "classifier.yaml"):
        (target / name).write_text((POLICIES / name).read_text())
    (target / "tiers.yaml").write_text(text)
    return target


def test_every_model_id_the_sdk_knows_is_in_the_catalogue(table):
    ids = sdk_model_ids()
    assert "claude-sonnet-5" in ids and "claude-haiku-4-5-20251001" in ids  # the SDK's list, read, not assumed
    for model in ids:
        found = table.catalogue.resolve(model)
        assert found is not None and found.listed, f"{model} is not listed"
        assert found.family and found.info is not None, model
        assert found.info.input > 0 and found.info.output > 0 and found.info.max_output_tokens > 0, model


@pytest.mark.parametrize(
    ("model", "tier", "prices"),
    [
        ("claude-sonnet-5", "sonnet", (3, 15)),
        ("claude-haiku-4-5-20251001", "haiku", (1, 5)),
        ("claude-opus-4-8", "opus", (5, 25)),
        ("claude-opus-5", "opus", (5, 25)),
        ("claude-opus-4-5-20251101", "opus", (5, 25)),
        ("claude-opus-4-8-latest", "opus", (5, 25)),  # a -latest form of a listed id is that entry
        ("claude-haiku-4-5-20260601", "haiku", (1, 5)),  # a later snapshot of a listed id too
    ],
)
def test_known_ids_get_their_tier_and_prices(table, model, tier, prices):
    assert table.tier_of_model(model) == tier
    info = table.models.get(model)
    assert info is not None and (info.input, info.output) == prices
    assert cost_usd(info, 1_000_000, 0) == prices[0]


def test_a_named_id_is_tried_first_then_its_tiers_fallbacks():
    policy = load_policy(POLICIES)
    p = plan(facts("claude-sonnet-5"), policy, {}, 0.0)
    assert p.targets[0] == Target("claude-sonnet-5", "sonnet")
    assert [t.tier for t in p.targets] == ["sonnet", *policy.tiers.tiers["sonnet"].fallback]
    snapshot = plan(facts("claude-haiku-4-5-20251001"), policy, {}, 0.0)
    assert snapshot.targets[0] == Target("claude-haiku-4-5-20251001", "haiku") and len(snapshot.targets) == 3


def test_unlisted_id_of_a_family_is_priced_by_it_and_the_policy_decides_fallback(tmp_path, table):
    assert table.tier_of_model("claude-sonnet-7") == "sonnet"
    assert table.models.get("claude-sonnet-7").input == 3
    assert table.catalogue.unlisted_family("claude-sonnet-7") == "sonnet"
    assert table.catalogue.unlisted_family("claude-sonnet-5") is None  # listed: not counted
    assert table.catalogue.label("claude-sonnet-7") == "family:sonnet"  # never the client's own string
    assert table.tier_of_model("gpt-4o") is None and table.models.get("gpt-4o") is None
    forwarding = (POLICIES / "tiers.yaml").read_text().replace(
        "priced_as: claude-sonnet-5-5}", "priced_as: claude-sonnet-5-5, unlisted: forward}"
    )
    policy = load_policy(copy_with_tiers(tmp_path, forwarding))
    assert policy.tiers.tier_of_model("claude-sonnet-7") is None
    assert policy.tiers.models.get("claude-sonnet-7").output == 15, "still priced"
    assert plan(facts("claude-sonnet-7"), policy, {}, 0.0).targets == (Target("claude-sonnet-7", None),)


def test_retired_models_have_no_tier_and_a_clear_message(table):
    for model in ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", "claude-mythos-preview"):
        assert table.tier_of_model(model) is None, model
        message = table.catalogue.retirement(model)
        assert message and "retired" in message, model
    assert "2026-11-30" in table.catalogue.retirement("claude-sonnet-4-5")
    assert "claude-sonnet-4-6" in table.catalogue.retirement("claude-sonnet-4-5")
    assert table.catalogue.retirement("claude-sonnet-4-6") is None


@pytest.mark.parametrize("directory", SHIPPED_DIRS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_tier_tables_list_no_retired_model(directory):
    table = load_policy(directory).tiers
    for tier in table.tiers.values():
        for model in tier.models:
            assert table.models[model].lifecycle != "retired", (directory, model)
    assert "claude-sonnet-4-5" not in [m for t in table.tiers.values() for m in t.models]


def test_a_tier_listing_a_retired_model_fails_validation_with_file_line(tmp_path):
    text = (POLICIES / "tiers.yaml").read_text().replace(
        "models: [claude-sonnet-4-6, claude-sonnet-5,", "models: [claude-sonnet-4-6, claude-sonnet-4-5, claude-sonnet-5,"
    )
    with pytest.raises(PolicyError) as error:
        load_policy(copy_with_tiers(tmp_path, text))
    (problem,) = error.value.problems
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "claude-sonnet-4-6, claude-sonnet-4-5" in row)
    assert problem.position.file.endswith("tiers.yaml") and problem.position.line == line
    assert "retired on 2026-11-30" in problem.message and "never a target" in problem.message


def test_catalogue_mistakes_are_reported_with_positions(tmp_path):
    text = (POLICIES / "tiers.yaml").read_text()
    text = text.replace("pattern: 'claude-opus-[0-9]+", "pattern: 'claude-opus-[0-9+")
    text = text.replace("priced_as: claude-haiku-5-5}", "priced_as: claude-haiku-9}")
    text = text.replace("family: sonnet}", "family: sonnet, aliases: [claude-haiku-4-5-20251001]}", 1)
    text = text.replace("{tier: sonnet, pattern", "{tier: sonet, pattern")
    with pytest.raises(PolicyError) as error:
        load_policy(copy_with_tiers(tmp_path, text))
    messages = sorted(p.message for p in error.value.problems)
    assert len(messages) == 4, messages
    assert any("bad regular expression" in m for m in messages)
    assert any("'claude-haiku-9' has no entry" in m for m in messages)
    assert any("alias 'claude-haiku-4-5-20251001' also names 'claude-haiku-4-5'" in m for m in messages)
    assert any("unknown tier 'sonet'" in m for m in messages)
    assert all(p.position.line > 1 for p in error.value.problems)


def test_an_entry_with_no_family_and_no_tier_is_still_reported(tmp_path):
    text = (POLICIES / "tiers.yaml").read_text().replace(
        "models:\n  claude-haiku-4-5:", "models:\n  claude-orphan-1: {input: 1, output: 1}\n  claude-haiku-4-5:"
    )
    with pytest.raises(PolicyError) as error:
        load_policy(copy_with_tiers(tmp_path, text))
    assert [p.message for p in error.value.problems] == ["model 'claude-orphan-1' is not in any tier"]


def test_deprecation_notices_use_the_tense_of_the_date(table):
    from router.policy.tiers import deprecation_notices

    sdk = {"claude-opus-4-7": "November 30th, 2026"}
    before = deprecation_notices(table, sdk, date(2026, 11, 1))
    after = deprecation_notices(table, sdk, date(2026, 12, 1))
    assert before["claude-opus-4-7"] == "tier table lists claude-opus-4-7, which Anthropic retires on 2026-11-30"
    assert after["claude-opus-4-7"].startswith("tier table lists claude-opus-4-7, which Anthropic retired on 2026-11-30")
    assert "requests to it fail" in after["claude-opus-4-7"]
    assert "retires on 2027-01-22" in after["claude-opus-4-5"]  # the catalogue's own lifecycle


def _warnings(caplog: pytest.LogCaptureFixture, model: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and model in r.getMessage()]


# A tier table written before the catalogue existed: it still lists claude-sonnet-4-5 and says nothing of
# lifecycles, so only the router's table of announced retirements (and SDKs up to 2.14) knows it is retired.
OLD_STYLE_TIERS = """\
default_tier: sonnet
tiers:
  haiku: {models: [claude-haiku-4-5], fallback: [sonnet]}
  sonnet: {models: [claude-sonnet-4-6, claude-sonnet-4-5], fallback: [haiku]}
  opus: {models: [claude-opus-4-8, claude-opus-4-5], fallback: [sonnet]}
models:
  claude-haiku-4-5: {input: 1, output: 5}
  claude-sonnet-4-6: {input: 3, output: 15}
  claude-sonnet-4-5: {input: 3, output: 15}
  claude-opus-4-8: {input: 5, output: 25}
  claude-opus-4-5: {input: 5, output: 25}
"""


def test_deprecation_warning_once_per_model_per_process_across_reloads(make_router, caplog):
    caplog.set_level(logging.INFO)
    router = make_router(OLD_STYLE_TIERS, policy_poll_seconds=0.05)
    rules = Path(router.settings.policies_dir) / "rules.yaml"
    for round_ in range(2):
        rules.write_text(rules.read_text() + f"# edit {round_}\n")
        deadline = time.monotonic() + 10
        while sum("policy reloaded" in r.getMessage() for r in caplog.records) <= round_:
            assert time.monotonic() < deadline, "the reload did not happen"
            time.sleep(0.02)
    time.sleep(0.1)  # the warning follows the reload's own log line
    retired = _warnings(caplog, "claude-sonnet-4-5")
    assert len(retired) == 1, retired
    assert "retired on 2026-11-30" in retired[0] and "retires" not in retired[0]
    assert len(_warnings(caplog, "claude-opus-4-5")) == 1


def test_an_admin_reload_warns_about_a_newly_listed_deprecated_model(make_router, caplog):
    """Every trigger that swaps the policy runs the deprecation notice -- the admin endpoint included (it
    used to skip it: only the watcher and SIGHUP warned)."""
    from router.policy.keys import hash_key
    from tests.conftest import post

    admin_key = "sk-router-admin-catalogue-test-0042"
    caplog.set_level(logging.INFO)
    current = OLD_STYLE_TIERS.replace(", claude-opus-4-5]", "]").replace("  claude-opus-4-5: {input: 5, output: 25}\n", "")
    router = make_router(current, admin_key_hash=hash_key(admin_key), policy_poll_seconds=3600)
    assert _warnings(caplog, "claude-opus-4-5") == []
    (Path(router.settings.policies_dir) / "tiers.yaml").write_text(OLD_STYLE_TIERS)
    status, _, body = post(router.admin_url + "/v1/router/admin/reload", b"", {"x-api-key": admin_key})
    assert status == 200, body
    notices = _warnings(caplog, "claude-opus-4-5")
    assert len(notices) == 1 and "retires on 2027-01-22" in notices[0], notices
    assert len(_warnings(caplog, "claude-sonnet-4-5")) == 1  # warned at start-up, not again on the reload


def test_announced_retirements_survive_an_sdk_that_dropped_them():
    """anthropic 2.15 removed claude-sonnet-4-5 from its DEPRECATED_MODELS once it retired; the router's
    own table of announced dates keeps warning about a tier table that still lists it."""
    from router.policy.tiers import PUBLISHED_RETIREMENTS, deprecation_dates, retirement_date

    dates = deprecation_dates()
    for model in PUBLISHED_RETIREMENTS:
        assert retirement_date(dates[model]) == retirement_date(PUBLISHED_RETIREMENTS[model]), model
    assert retirement_date(dates["claude-sonnet-4-5"]) == date(2026, 11, 30)

