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
    report_md = (tmp_path / "images.md").read_text()
    assert "| InfoPro (contrast), K=4 | 4 |" in report_md
    assert "![memory per stage, accuracy and time per step](images.png)" in report_md
    assert (tmp_path / "images" / "infopro-contrast-k-4").is_dir()


def _rows():
    def row(method, k, acc, seconds, stages):
        return {
            "method": method,
            "k": k,
            "test_acc": acc,
            "seconds_per_step": seconds,
            "per_stage_bytes": [mib * 2**20 for mib in stages],
            "ledger_e2e_bytes": 40 * 2**20,
        }

    return [
        row("end-to-end", 1, 0.98, 0.5, [40]),
        row("greedy SL, K=4", 4, 0.95, 0.6, [12, 10, 9, 8]),
        row("InfoPro (contrast), K=4", 4, 0.96, 0.7, [14, 11, 10, 9]),
    ]


def test_demo_run_folders_have_clean_names():
    from splitnet._demo import METHODS, _slug

    assert [_slug(label) for label, _, _ in METHODS] == [
        "end-to-end",
        "greedy-sl-k-4",
        "infopro-contrast-k-4",
    ]


def test_demo_figure_shows_stages_1_to_k_and_honest_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from splitnet._demo import _figure

    fig = _figure(_rows(), plt)
    memory, accuracy, time = fig.axes
    assert [t.get_text() for t in memory.get_xticklabels()] == ["1", "2", "3", "4"]
    # end-to-end is a dashed reference line at its whole-network ledger, not a bar at a stage
    (reference,) = memory.get_lines()
    assert list(reference.get_ydata()) == [40, 40] and reference.get_linestyle() == "--"
    assert len(memory.patches) == 8
    assert memory.get_ylim()[0] == 0
    assert accuracy.get_ylim() == (0, 100)
    assert time.get_ylim()[0] == 0 and "wall-clock" in time.get_ylabel()
    assert "ledger" in memory.get_ylabel()
    colours = [tuple(bar.get_facecolor()) for bar in accuracy.patches]
    assert len(set(colours)) == 3
    assert [t.get_text() for t in accuracy.get_xticklabels()] == [
        "end-to-end",
        "greedy SL, K=4",
        "InfoPro (contrast), K=4",
    ]
    plt.close(fig)
