"""``router policy check | test | explain | diff | hash-key``: ops tooling from the command line.

Owns argument parsing and output; the work is in ``loader`` and ``tools``. Exit codes: 0 ok, 1 a test
case failed, 2 the policy is invalid or the input is unusable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from router.errors import ConfigError


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    policy = sub.add_parser("policy", help="check, test, explain and compare policy directories")
    actions = policy.add_subparsers(dest="policy_command", required=True)
    p = actions.add_parser("check", help="validate a policy directory")
    p.add_argument("directory", type=Path)
    p = actions.add_parser("test", help="run the test cases in DIR/tests/*.yaml")
    p.add_argument("directory", type=Path)
    p.add_argument("--models", type=Path, default=Path("models"), help="classifier for cases without one")
    p = actions.add_parser("explain", help="explain where one request goes and why")
    p.add_argument("directory", type=Path)
    p.add_argument("--request", type=Path, required=True, help="a JSON Messages request body ('-' for stdin)")
    p.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    p.add_argument("--tenant", default=None)
    p.add_argument("--models", type=Path, default=Path("models"))
    p = actions.add_parser("diff", help="replay requests through two policies: tier changes and projected cost")
    p.add_argument("old", type=Path)
    p.add_argument("new", type=Path)
    p.add_argument(
        "--replay", type=Path, required=True,
        help="JSON lines, as router classify reads them: request bodies or {\"prompt\": ...} (routed as model auto)",
    )
    p.add_argument("--limit", type=int, default=20, help="list at most this many changed requests (default 20; 0: none)")
    p.add_argument("--models", type=Path, default=Path("models"))
    actions.add_parser("hash-key", help="print the sha256 hash of a router key read from stdin (for tenants.yaml)")


def run(args: argparse.Namespace) -> int:
    try:
        return {"check": _check, "test": _test, "explain": _explain, "diff": _diff, "hash-key": _hash_key}[
            args.policy_command
        ](args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2


def _local_classifier(models: Path, policy: Any) -> Any:
    from router.classify.local import load

    return load(models, policy.classifier.model).classify


def _check(args: argparse.Namespace) -> int:
    from router.policy.loader import load_policy

    policy = load_policy(args.directory)
    rules = len(policy.rules) + sum(len(t.rules) for t in policy.tenants.tenants.values())
    print(f"ok: {args.directory} version {policy.version} ({len(policy.tiers.tiers)} tiers, {rules} rules, {len(policy.tenants.tenants)} tenants)")
    return 0


def _test(args: argparse.Namespace) -> int:
    from router.policy.loader import load_policy
    from router.gateway.explain import load_cases, run_case

    policy = load_policy(args.directory)
    cases = load_cases(args.directory)
    if not cases:
        print(f"no test cases in {args.directory / 'tests'}", file=sys.stderr)
        return 2
    classify = _local_classifier(args.models, policy)
    failed = 0
    for source, case in cases:
        result = run_case(policy, case, classify)
        if result.ok:
            print(f"PASS {result.name}")
        else:
            failed += 1
            print(f"FAIL {result.name} ({source})\n    {result.detail}")
    print(f"{len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


def _read_json(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not JSON: {exc}") from None


def _explain(args: argparse.Namespace) -> int:
    from router.policy.loader import load_policy
    from router.gateway.explain import explain

    policy = load_policy(args.directory)
    body = _read_json(args.request)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
    classification = _local_classifier(args.models, policy)(body) if body.get("model") == "auto" else None
    report = explain(policy, body, headers=headers, tenant=args.tenant, classification=classification)
    print(json.dumps(report, indent=2))
    return 0


def read_replay(path: Path) -> list[dict[str, Any]]:
    """Replay input: one JSON object per line, the shapes ``router classify`` accepts. A request body is
    used as it is; a ``{"prompt": ...}`` line becomes a single-turn ``auto`` request; a body without a
    ``model`` is routed as ``auto``."""
    from router.classify.features import prompt_body

    bodies: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(raw, dict):
                raise ConfigError(f"{path}:{number}: expected a JSON object (a request body or {{\"prompt\": ...}})")
            if "prompt" in raw and "messages" not in raw:
                raw = {**prompt_body(str(raw["prompt"])), "max_tokens": raw.get("max_tokens", 1024)}
            bodies.append(raw if "model" in raw else {"model": "auto", **raw})
    return bodies


def _progress(items: list[dict[str, Any]], what: str) -> Any:
    """A progress bar on stderr when it is a terminal; the items unchanged otherwise (pipes, CI, files)."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=what, unit="req", file=sys.stderr, leave=False)


def _diff(args: argparse.Namespace) -> int:
    from router.policy.loader import load_policy
    from router.gateway.explain import diff

    if args.limit < 0:
        raise ConfigError("--limit must be 0 or more")
    old, new = load_policy(args.old), load_policy(args.new)
    try:
        bodies = read_replay(args.replay)
    except OSError as exc:
        raise ConfigError(f"{args.replay}: cannot read: {exc.strerror}") from None
    report = diff(old, new, _progress(bodies, "replaying"), _local_classifier(args.models, new), args.limit)
    print(json.dumps(msgspec.to_builtins(report), indent=2))
    return 0


def _hash_key(args: argparse.Namespace) -> int:
    from router.policy.keys import hash_key_command

    # Read from stdin, not argv: a key on the command line ends up in shell history and process lists.
    print(hash_key_command(sys.stdin.readline()))
    return 0
