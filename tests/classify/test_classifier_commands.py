"""The classifier's commands as a user runs them: classify, calibrate, train (with Haiku-labelled extras)
and eval, as real processes; and the learning sink recording what Haiku labelled."""

from __future__ import annotations

import csv
import json
import os
import shutil
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
    """A few hundred rows of the shared data (natural_v2 and the weak/strong sets), so a full train/eval run
    takes seconds."""
    target = tmp_path / "data"
    (target / "labeled_natural_v2").mkdir(parents=True)
    per_source: dict[str, int] = {}
    with (SHARED_DATA / "labeled_natural_v2" / "natural_v2.jsonl").open() as src, (
        target / "labeled_natural_v2" / "natural_v2.jsonl"
    ).open("w") as out:
        for line in src:
            source = json.loads(line)["source"]
            per_source[source] = per_source.get(source, 0) + 1
            if per_source[source] <= 50:
                out.write(line)
    (target / "routellm_evals").mkdir()
    with (SHARED_DATA / "routellm_evals" / "gsm8k__gsm8k_responses.csv").open(newline="") as src:
        rows = list(csv.reader(src))[:81]
    with (target / "routellm_evals" / "gsm8k__gsm8k_responses.csv").open("w", newline="") as out:
        csv.writer(out).writerows(rows)
    (target / "alpaca_eval").mkdir()
    with (SHARED_DATA / "alpaca_eval" / "alpaca_eval2_pref_vs_gpt4turbo_matrix.csv").open(newline="") as src:
        rows = list(csv.reader(src))[:101]
    with (target / "alpaca_eval" / "alpaca_eval2_pref_vs_gpt4turbo_matrix.csv").open("w", newline="") as out:
        csv.writer(out).writerows(rows)
    shutil.copy(SHARED_DATA / "alpaca_eval" / "alpaca_eval_805_prompts.jsonl", target / "alpaca_eval")
    return target


@pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs ../shared/data")
def test_train_with_extra_then_eval_writes_the_report(tmp_path):
    data = small_data_dir(tmp_path)
    extra = tmp_path / "sink.jsonl"
    with extra.open("w") as handle:
        for i in range(20):
            body = {"messages": [{"role": "user", "content": f"Please draft a limerick number {i} about a cat"}]}
            handle.write(json.dumps({"body": body, "category": "creative_writing", "complexity": "low", "difficulty": 0.2}) + "\n")
    models = tmp_path / "models"
    trained = run_router(
        "train", "--data", str(data), "--out", str(models), "--extra", str(extra), "--no-curves", "--max-iter", "25",
        "--bootstrap", "50",
    )
    assert trained.returncode == 0, trained.stderr
    assert "natural held-out split" in trained.stdout
    meta = json.loads((models / "triage-local-v2.json").read_text())
    assert meta["artifact_format"] == 2 and meta["training_data"]["rows_by_source"]["haiku_labelled"] == 20
    assert "alpaca_eval" not in meta["training_data"]["rows_by_source"]
    assert len(meta["training_data"]["labeled_natural_v2_sha256"]) == 64
    assert set(meta["versions"]) == {"python", "numpy", "scikit-learn"}
    assert meta["embedding"]["table"] == "wordllama" and meta["embedding"]["licence"].startswith("wordllama")
    held = meta["evaluation"]["natural_holdout"]
    assert {"length", "new"} <= set(held["models"]) and "spearman" in held["margins"]["length"]

    report_dir = tmp_path / "report"
    evaluation = run_router(
        "eval", "--data", str(data), "--models", str(models), "--report", str(report_dir), "--extra", str(extra),
        "--bootstrap", "50",
    )
    assert evaluation.returncode == 0, evaluation.stderr
    assert "natural held-out split" in evaluation.stdout and "APGR" in evaluation.stdout
    assert "agreement with Haiku labels" in evaluation.stdout
    page = (report_dir / "index.html").read_text()
    for figure in ("cost_quality.png", "confusion.png", "calibration.png", "difficulty_by_source.png"):
        path = report_dir / figure
        assert path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:4] == b"\x89PNG", figure
        assert figure in page
    assert page.count("data:image/png;base64,") == 4, "the page carries its figures"

    calibrated = run_router("calibrate", "--data", str(data), "--models", str(models))
    assert calibrated.returncode == 0, calibrated.stderr
    point = json.loads(calibrated.stdout)
    shares = point["natural_training_rows"]["tier_shares"]
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-3)
    assert 0.0 < point["natural_training_rows"]["cost_cut_vs_always_opus"] < 0.8


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

