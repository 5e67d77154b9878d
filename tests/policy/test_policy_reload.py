"""Hot reload: the policy store's swap/keep semantics on the real loader and a real policy directory, the
checks every reload runs (the same as start-up, plus tenants -> open mode), the directory watcher, and the
SIGHUP hook.

Store tests load a copy of ``policies/`` with ``router.policy.loader.load_policy`` and the router's own
reload check (``router.server.checks``); only two tests wrap the real loader, to inject a failure the files
cannot produce (an exception that is not a PolicyError) and to observe serialisation.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from router.policy.keys import hash_key
from router.policy.loader import Policy, load_policy
from router.policy.source import PolicyError
from router.policy.store import PolicyStore, ReloadResult
from router.policy.watch import DirectoryWatcher, directory_signature, install_sighup
from router.errors import ConfigError
from router.server.checks import reload_check, startup_checks
from router.settings import Settings
from tests.conftest import POLICIES, ROOT, post, sdk_client

KEY = "sk-router-reload-test-0123456789ab"
TENANTS = f"tenants:\n  team-a:\n    keys: [\"{hash_key(KEY)}\"]\n"
DEFAULT_TO = "rules:\n  - name: default\n    then: {{tier: {tier}}}\n"


def make_store(
    directory: Path, loader: Callable[[Path], Policy] = load_policy, host: str = "127.0.0.1"
) -> PolicyStore[Policy]:
    models = directory.parent / "models"
    settings = Settings(host=host, policies_dir=directory, models_dir=models if models.is_dir() else ROOT / "models")
    return PolicyStore(loader, directory, check=reload_check(settings), wall_clock=lambda: 1_700_000_000.0)


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(POLICIES, directory)
    (directory / "rules.yaml").write_text(DEFAULT_TO.format(tier="sonnet"))
    models = tmp_path / "models"
    shutil.copytree(ROOT / "models", models)
    for suffix in (".json", ".npz"):  # a second artifact that loads, for renaming the model
        shutil.copy(models / f"triage-local-v2{suffix}", models / f"triage-local-v9{suffix}")
    return directory


def reload(store: PolicyStore[Policy], trigger: Any = "admin") -> ReloadResult:
    return asyncio.run(store.reload(trigger))


# -- store ---------------------------------------------------------------------------------------------------


def test_good_reload_swaps_and_bumps_version(policies: Path) -> None:
    store = make_store(policies)
    first = store.initial_load()
    assert store.current is first and store.last_result is not None and store.last_result.trigger == "startup"
    (policies / "rules.yaml").write_text(DEFAULT_TO.format(tier="haiku"))
    result = reload(store)
    assert result == ReloadResult(True, "admin", store.current.version, None, 1_700_000_000.0, changed=True)
    assert store.current is not first and store.current.version != first.version
    assert store.current.rules[0].then.tier == "haiku" and first.rules[0].then.tier == "sonnet"
    assert (store.reloads_ok, store.reloads_failed) == (1, 0)


def test_bad_reload_keeps_last_good_and_records_positions(policies: Path) -> None:
    store = make_store(policies)
    good = store.initial_load()
    (policies / "rules.yaml").write_text("rules:\n  - name: default\n    then: {tier: sonnet}\n    wen: {}\n")
    (policies / "tiers.yaml").write_text((POLICIES / "tiers.yaml").read_text() + "colour: blue\n")
    result = reload(store, "watch")
    assert not result.ok and result.trigger == "watch" and result.version == good.version
    assert result.error is not None
    lines = result.error.splitlines()
    # Every problem of every file, each with file:line:column, not just the first one found.
    assert any(line.startswith(f"{policies / 'rules.yaml'}:4:") and "wen" in line for line in lines), lines
    assert any(line.startswith(f"{policies / 'tiers.yaml'}:") and "colour" in line for line in lines), lines
    assert store.current is good
    assert (store.reloads_ok, store.reloads_failed) == (0, 1)
    details = store.details()
    assert details == {
        "version": good.version,
        "last_reload": {"ok": False, "trigger": "watch", "at": 1_700_000_000.0, "error": result.error},
        "reloads_ok": 0,
        "reloads_failed": 1,
    }
    msgspec.json.encode(details)  # /readyz serialises it as is


def test_unexpected_loader_error_keeps_last_good(policies: Path) -> None:
    loads = 0

    def flaky_load(directory: Path) -> Policy:
        nonlocal loads
        loads += 1
        if loads > 1:  # a file vanishing mid-swap: not a PolicyError, still must not replace the policy
            raise FileNotFoundError("rules.yaml")
        return load_policy(directory)

    store = make_store(policies, flaky_load)
    good = store.initial_load()
    result = reload(store, "sighup")
    assert not result.ok and result.error == "FileNotFoundError: rules.yaml" and store.current is good


def test_same_content_is_ok_without_swap(policies: Path) -> None:
    store = make_store(policies)
    first = store.initial_load()
    result = reload(store, "sighup")
    assert result.ok and not result.changed and result.version == first.version
    assert store.current is first  # identity: readers' caches keyed on the object stay valid
    assert store.reloads_ok == 1


def test_concurrent_reloads_are_serialised(policies: Path) -> None:
    events: list[str] = []
    inside = threading.Lock()  # loads run in worker threads: a second one entering would find it held

    def slow_load(directory: Path) -> Policy:
        assert inside.acquire(blocking=False), "two loads ran at once"
        try:
            events.append("enter")
            time.sleep(0.05)
            events.append("exit")
            return load_policy(directory)
        finally:
            inside.release()

    store = make_store(policies, slow_load)
    store.initial_load()
    events.clear()

    async def scenario() -> list[ReloadResult]:
        return await asyncio.gather(*(store.reload(t) for t in ("watch", "sighup", "admin")))

    results = asyncio.run(scenario())
    assert all(r.ok for r in results)
    assert events == ["enter", "exit"] * 3
    assert store.reloads_ok == 3


def test_store_before_initial_load_refuses() -> None:
    store = make_store(Path("/nonexistent"))
    with pytest.raises(RuntimeError):
        _ = store.current
    assert store.details()["last_reload"] is None


def test_initial_load_raises_on_bad_policy(policies: Path) -> None:
    (policies / "tiers.yaml").write_text("default_tier: [\n")
    with pytest.raises(PolicyError, match="tiers.yaml:"):
        make_store(policies).initial_load()


# -- what every reload checks (issue 13, defects 1 and 6) ----------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "emptied", "no tenants left"])
def test_reload_refuses_to_lose_every_tenant(policies: Path, how: str) -> None:
    (policies / "tenants.yaml").write_text(TENANTS)
    store = make_store(policies)
    served = store.initial_load()
    if how == "deleted":
        (policies / "tenants.yaml").unlink()
    else:
        (policies / "tenants.yaml").write_text("" if how == "emptied" else "tenants: {}\n")
    result = reload(store, "watch")
    assert not result.ok and store.current is served
    assert result.error is not None and "tenants.yaml" in result.error and "open_mode: true" in result.error
    # Saying so explicitly is the way to open mode.
    (policies / "tenants.yaml").write_text("open_mode: true\n")
    assert reload(store, "watch").ok and store.current.tenants.open_mode


def test_reload_runs_the_bind_guard(policies: Path) -> None:
    (policies / "tenants.yaml").write_text("open_mode: true\n")  # allowed on 0.0.0.0: said explicitly
    store = make_store(policies, host="0.0.0.0")
    store.initial_load()
    (policies / "tenants.yaml").write_text("open_mode: false\n")  # keyless on a network address
    result = reload(store)
    assert not result.ok and store.current.tenants.open_mode
    assert result.error is not None and "refusing to serve on '0.0.0.0'" in result.error


def test_the_bind_guard_covers_the_admin_listener(policies: Path) -> None:
    policy = load_policy(policies)  # no tenants, no open mode: loopback only
    startup_checks(Settings(models_dir=ROOT / "models"), policy)
    with pytest.raises(ConfigError, match="refusing to serve on '0.0.0.0'"):
        startup_checks(Settings(admin_host="0.0.0.0", models_dir=ROOT / "models"), policy)
    startup_checks(Settings(admin_host="0.0.0.0", admin_port=None, models_dir=ROOT / "models"), policy)  # off


def test_reload_refuses_a_classifier_model_that_does_not_load(policies: Path) -> None:
    models = policies.parent / "models"
    store = make_store(policies)
    served = store.initial_load()
    # The artifact the served policy names is deleted: the next restart would crash-loop, so must a reload.
    (models / "triage-local-v2.npz").unlink()
    (policies / "rules.yaml").write_text(DEFAULT_TO.format(tier="haiku"))
    result = reload(store)
    assert not result.ok and store.current is served
    assert result.error is not None and "classifier.yaml" in result.error and "triage-local-v2" in result.error


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("model: triage-local-v2", "model: triage-local-v9", "'model'"),
        ("deadline_seconds: 1.5", "deadline_seconds: 3", "'haiku.deadline_seconds'"),
        ("model: claude-haiku-4-5", "model: claude-haiku-5-5", "'haiku.model'"),
        ("learning_sink: null", "learning_sink: /tmp/labels.jsonl", "'learning_sink'"),
    ],
)
def test_reload_refuses_start_up_only_classifier_edits(policies: Path, old: str, new: str, field: str) -> None:
    store = make_store(policies)
    served = store.initial_load()
    text = (policies / "classifier.yaml").read_text()
    assert old in text
    (policies / "classifier.yaml").write_text(text.replace(old, new, 1))
    result = reload(store)
    assert not result.ok and store.current is served
    assert result.error is not None and field in result.error and "Restart" in result.error


def test_reload_applies_live_classifier_settings(policies: Path) -> None:
    store = make_store(policies)
    store.initial_load()
    text = (policies / "classifier.yaml").read_text()
    (policies / "classifier.yaml").write_text(text.replace("confidence_threshold: 0.5", "confidence_threshold: 0.7"))
    result = reload(store)
    assert result.ok and result.changed and store.current.classifier.confidence_threshold == 0.7


# -- watcher -------------------------------------------------------------------------------------------------


def watch_until(directory: Path, change: Callable[[], None]) -> int:
    """Start a watcher, apply ``change``, wait for the first on_change (bounded, so a loaded CI box does not
    flake), then a few more intervals to catch a second, unwanted one. Returns the number of calls."""
    calls: list[float] = []

    async def on_change() -> None:
        calls.append(time.monotonic())

    async def scenario() -> None:
        watcher = DirectoryWatcher(directory, on_change, interval_s=0.05)
        watcher.start()
        try:
            await asyncio.sleep(0.12)
            assert calls == []  # nothing changed yet
            change()
            deadline = time.monotonic() + 3
            while not calls and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.25)
        finally:
            await watcher.stop()

    asyncio.run(scenario())
    return len(calls)


def test_watcher_sees_in_place_rewrite(policies: Path) -> None:
    def rewrite() -> None:
        with open(policies / "rules.yaml", "a") as f:  # same inode, new size and mtime
            f.write("  - name: extra\n")

    assert watch_until(policies, rewrite) == 1


def test_watcher_sees_configmap_symlink_swap(tmp_path: Path) -> None:
    first = tmp_path / "..2026_01_01"
    first.mkdir()
    (first / "rules.yaml").write_text("rules: []\n")
    os.symlink("..2026_01_01", tmp_path / "..data")
    os.symlink("..data/rules.yaml", tmp_path / "rules.yaml")

    def swap() -> None:
        # What kubelet does: a new timestamped dir, then rename a fresh symlink over ..data. The new file
        # has the same size and may even share an mtime with the old one; only the target changes.
        second = tmp_path / "..2026_01_02"
        second.mkdir()
        (second / "rules.yaml").write_text("rules: []\n")
        os.symlink("..2026_01_02", tmp_path / "..data_tmp")
        os.replace(tmp_path / "..data_tmp", tmp_path / "..data")

    before = directory_signature(tmp_path)
    assert watch_until(tmp_path, swap) == 1
    (tmp_path / "..2026_01_01" / "rules.yaml").unlink()  # kubelet then removes the old dir
    (tmp_path / "..2026_01_01").rmdir()
    after = {e[0]: e[1] for e in directory_signature(tmp_path)}
    assert after["rules.yaml"].endswith("..2026_01_02/rules.yaml")
    assert {e[0]: e[1] for e in before}["rules.yaml"].endswith("..2026_01_01/rules.yaml")


def test_watcher_sees_new_file(policies: Path) -> None:
    assert watch_until(policies, lambda: (policies / "tenants.yaml").write_text("tenants: []\n")) == 1


def test_watcher_sees_deleted_file(policies: Path) -> None:
    assert watch_until(policies, lambda: (policies / "tiers.yaml").unlink()) == 1


def test_watcher_debounces_multi_step_writes(policies: Path) -> None:
    """Changes on consecutive polls collapse into one on_change, after the directory holds still."""
    calls: list[int] = []

    async def on_change() -> None:
        calls.append(1)

    async def scenario() -> list[bool]:
        watcher = DirectoryWatcher(policies, on_change)
        watcher.start()  # baseline only; the test steps poll() itself, no timing involved
        steps = []
        for text in ("a: 1\n", "a: 12\n", "a: 123\n"):
            (policies / "rules.yaml").write_text(text)
            steps.append(await watcher.poll())
        steps.append(await watcher.poll())  # unchanged since the last poll: settled
        steps.append(await watcher.poll())  # nothing new
        await watcher.stop()
        return steps

    assert asyncio.run(scenario()) == [False, False, False, True, False]
    assert len(calls) == 1


def test_watcher_survives_failing_callback(policies: Path) -> None:
    calls: list[int] = []

    async def on_change() -> None:
        calls.append(1)
        raise RuntimeError("reload exploded")

    async def scenario() -> None:
        watcher = DirectoryWatcher(policies, on_change, interval_s=0.02)
        watcher.start()
        (policies / "a.yaml").write_text("x\n")
        await asyncio.sleep(0.15)
        (policies / "b.yaml").write_text("y\n")
        await asyncio.sleep(0.15)
        await watcher.stop()

    asyncio.run(scenario())
    assert len(calls) == 2


# -- SIGHUP --------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_schedules_the_callback() -> None:
    async def scenario() -> None:
        fired = asyncio.Event()

        async def callback() -> None:
            fired.set()

        remove = install_sighup(asyncio.get_running_loop(), callback)
        try:
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.wait_for(fired.wait(), timeout=2)
        finally:
            remove()
        remove()  # idempotent

    before = signal.getsignal(signal.SIGHUP)
    asyncio.run(scenario())
    assert signal.getsignal(signal.SIGHUP) == before  # the process's own SIGHUP handling is back


def test_sighup_outside_main_thread_is_a_no_op() -> None:
    removes: list[Any] = []

    def in_thread() -> None:
        async def scenario() -> None:
            async def callback() -> None:
                pass

            removes.append(install_sighup(asyncio.get_running_loop(), callback))

        asyncio.run(scenario())

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join()
    assert len(removes) == 1
    removes[0]()  # safe to call


# -- the same, on a served router under traffic ---------------------------------------------------------------


def _details(router: Any) -> dict[str, Any]:
    with urllib.request.urlopen((getattr(router, "admin_url", "") or router.url) + "/readyz", timeout=5) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


def _status(router: Any, key: str) -> int:
    body = json.dumps({"model": "haiku", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}).encode()
    return post(router.url + "/v1/messages", body, {"x-api-key": key, "content-type": "application/json"})[0]


def _wait_failed_reloads(router: Any, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        policy = _details(router)["policy"]
        if policy["reloads_failed"] >= count:
            return policy  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"no failed reload #{count}: {policy}")


def test_deleting_tenants_yaml_under_traffic_keeps_every_unknown_key_out(make_router):
    router = make_router(files={"tenants.yaml": TENANTS}, policy_poll_seconds=0.05)
    directory = router.settings.policies_dir
    statuses: dict[str, list[int]] = {"stranger": [], "tenant": []}
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            statuses["stranger"].append(_status(router, f"sk-stranger-{n:04d}-000000000000"))
            statuses["tenant"].append(_status(router, KEY))

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        time.sleep(0.2)
        (directory / "tenants.yaml").unlink()
        policy = _wait_failed_reloads(router, 1)
        assert "tenants.yaml" in policy["last_reload"]["error"] and "open_mode: true" in policy["last_reload"]["error"]
        time.sleep(0.3)
        (directory / "tenants.yaml").write_text("tenants: {}\n")  # emptied rather than deleted
        _wait_failed_reloads(router, 2)
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join(10)
    assert len(statuses["stranger"]) > 10
    assert set(statuses["stranger"]) == {401}, statuses["stranger"]
    assert set(statuses["tenant"]) == {200}
    # Open mode said explicitly is honoured.
    (directory / "tenants.yaml").write_text("open_mode: true\n")
    deadline = time.monotonic() + 10
    while _status(router, "sk-stranger-after-0000000000") != 200:
        assert time.monotonic() < deadline, "open_mode: true was not applied"
        time.sleep(0.05)


def test_served_router_refuses_a_missing_model_and_a_haiku_edit_and_says_why(make_router, tmp_path):
    models = tmp_path / "served-models"
    shutil.copytree(ROOT / "models", models)
    admin = "sk-admin-key-reload-checks-0001"
    router = make_router(models_dir=models, admin_key_hash=hash_key(admin), policy_poll_seconds=3600.0)
    directory = router.settings.policies_dir
    version = _details(router)["policy"]["version"]
    reload_url = (getattr(router, "admin_url", "") or router.url) + "/v1/router/admin/reload"

    classifier = (directory / "classifier.yaml").read_text()
    (directory / "classifier.yaml").write_text(classifier.replace("deadline_seconds: 1.5", "deadline_seconds: 4"))
    status, _, payload = post(reload_url, b"", {"x-api-key": admin})
    result = json.loads(payload)
    assert status == 422 and not result["ok"] and "'haiku.deadline_seconds'" in result["error"]
    assert _details(router)["policy"]["version"] == version

    (directory / "classifier.yaml").write_text(classifier)
    (models / "triage-local-v2.npz").unlink()
    (directory / "rules.yaml").write_text(DEFAULT_TO.format(tier="haiku"))
    status, _, payload = post(reload_url, b"", {"x-api-key": admin})
    result = json.loads(payload)
    assert status == 422 and "triage-local-v2" in result["error"] and "classifier.yaml" in result["error"]
    policy = _details(router)["policy"]
    assert policy["version"] == version and policy["last_reload"]["ok"] is False
    assert sdk_client(router).messages.create(model="haiku", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
