"""The classifier's commands as a user runs them: classify, calibrate, train (with Haiku-labelled extras)
and eval, as real processes; and the learning sink recording what Haiku labelled."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CLIENT_KEY, ROOT, sdk_client

SHARED_DATA = ROOT.parent / "shared" / "data"


def run_router(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "ROUTER_"))}
    return subprocess.run(
        [sys.executable, "-m", "router", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **(env or {})},
        timeout=300,
    )


def test_classify_reads_bodies_and_prompts_and_writes_one_line_each():
    lines = [
        json.dumps({"prompt": "Write a haiku about autumn leaves."}),
        json.dumps({"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "Fix this Python bug: for i in range(10) print(i)"}]}),
        "",
    ]
    result = run_router("classify", "--local-only", stdin="\n".join(lines))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["stage"] for o in out] == ["local", "local"]
    assert out[0]["category"] == "creative_writing" and out[1]["category"] == "code"
    assert all(set(o) == {"category", "complexity", "difficulty", "confidence", "stage", "scores"} for o in out)


def test_classify_without_an_upstream_says_it_is_local_only():
    result = run_router("classify", stdin=json.dumps({"prompt": "hello"}))
    assert result.returncode == 0
    assert "local model only" in result.stderr
    assert json.loads(result.stdout)["stage"] == "local"


def test_classify_rejects_a_bad_line_with_its_number():
    result = run_router("classify", "--local-only", stdin='{"prompt": "ok"}\nnot json\n')
    assert result.returncode != 0 and "line 2" in result.stderr


def test_calibrate_picks_the_quantile_for_the_target_share():
    prompts = [
        "hi",
        "Write a poem about the sea",
        "What is the capital of France?",
        "Prove that sqrt(2) is irrational",
        "Summarize this article: the economy grew by 3 percent last year while inflation fell.",
        "Translate 'good morning' into Spanish",
        "List ten names for a coffee shop",
        "Is this review positive or negative: the food was cold",
    ] * 5
    stdin = "\n".join(json.dumps({"prompt": p}) for p in prompts)
    result = run_router("calibrate", "--target-share", "0.25", stdin=stdin)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["requests"] == 40
    assert 0.0 < report["confidence_threshold"] < 1.0
    assert report["haiku_share"] <= 0.25


def small_data_dir(tmp_path: Path) -> Path:
    """A few hundred rows of the shared combined table, so a full train/eval run takes seconds."""
    rows_by_source: dict[str, list[str]] = {}
    with gzip.open(SHARED_DATA / "combined" / "router_prompts_v0.jsonl.gz", "rt") as handle:
        for line in handle:
            source = json.loads(line)["source"]
            bucket = rows_by_source.setdefault(source, [])
            if len(bucket) < 40:
                bucket.append(line)
    target = tmp_path / "data"
    (target / "combined").mkdir(parents=True)
    with gzip.open(target / "combined" / "router_prompts_v0.jsonl.gz", "wt") as handle:
        for lines in rows_by_source.values():
            handle.writelines(lines)
    return target


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_train_with_extra_then_eval_reports_agreement(tmp_path):
    data = small_data_dir(tmp_path)
    extra = tmp_path / "sink.jsonl"
    with extra.open("w") as handle:
        for i in range(20):
            body = {"messages": [{"role": "user", "content": f"Please draft a limerick number {i} about a cat"}]}
            handle.write(json.dumps({"body": body, "category": "creative_writing", "complexity": "low"}) + "\n")
    models = tmp_path / "models"
    first = run_router("train", "--data", str(data), "--out", str(models))
    assert first.returncode == 0, first.stderr
    second = run_router("train", "--data", str(data), "--out", str(models), "--extra", str(extra))
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["haiku_agreement_before"]["rows"] == report["haiku_agreement_after"]["rows"] == 4
    assert report["haiku_agreement_after"]["category_agreement"] >= report["haiku_agreement_before"]["category_agreement"]
    meta = json.loads((models / "triage-local-v1.json").read_text())
    assert meta["training_data"]["rows_by_source"]["haiku_labelled"] == 16
    assert len(meta["training_data"]["combined_sha256"]) == 64
    assert set(meta["versions"]) == {"python", "numpy", "scikit-learn"}
    assert "natural_holdout" in meta["evaluation"] and "benchmark_holdout" in meta["evaluation"]
    evaluation = run_router("eval", "--data", str(data), "--models", str(models), "--extra", str(extra))
    assert evaluation.returncode == 0, evaluation.stderr
    assert "natural_holdout: rows=" in evaluation.stdout
    assert "agreement with Haiku labels" in evaluation.stdout


def test_learning_sink_records_what_haiku_labelled(make_router, sim, tmp_path):
    sink = tmp_path / "sink.jsonl"
    router = make_router(files={"classifier.yaml": f"confidence_threshold: 1.0\nlearning_sink: {sink}\n"})
    sdk_client(router).messages.create(
        model="auto", max_tokens=8, system="be brief", messages=[{"role": "user", "content": "Plan a trip to Rome"}]
    )
    (record,) = [json.loads(line) for line in sink.read_text().splitlines()]
    assert record["body"] == {"system": "be brief", "messages": [{"role": "user", "content": "Plan a trip to Rome"}]}
    assert record["category"] and record["complexity"] in ("low", "medium", "high")
    assert set(record["local"]) == {"category", "complexity"}
    assert CLIENT_KEY not in sink.read_text()

