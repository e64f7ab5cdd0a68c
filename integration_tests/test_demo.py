"""The main job (`nox -s demo`) end to end, one epoch: every method trains and is measured."""

from __future__ import annotations

import json


def test_splitnet_demo_trains_and_measures_every_method(run_module, tmp_path):
    # InfoPro's reconstruction needs image-range inputs in the real-peak measurement too:
    # only a run of the whole demo with infoloss installed exercises that path
    proc = run_module("splitnet", "demo", "--epochs", "1", "--out", str(tmp_path), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "images.json").read_text())
    assert report["skipped"] == []
    assert [r["method"] for r in report["rows"]] == [
        "end-to-end",
        "greedy SL, K=4",
        "InfoPro (contrast), K=4",
    ]
    e2e, *local = report["rows"]
    assert e2e["real_ratio"] == 1.0 and e2e["ledger_ratio"] == 1.0
    for row in local:
        assert len(row["cuts"]) == 3 and len(row["per_stage_bytes"]) == 4
        assert 0 < row["ledger_ratio"] < 1, row
        assert row["real_peak_bytes"] > 0 and 0 <= row["test_acc"] <= 1
    assert "| InfoPro (contrast), K=4 | 4 |" in (tmp_path / "images.md").read_text()
