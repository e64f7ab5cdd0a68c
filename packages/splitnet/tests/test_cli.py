"""The command line: memory JSON, plan tables, listing, and errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys

from splitnet._cli import main, parse_value


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_memory_json_has_the_documented_fields(capsys):
    code, out, _ = run(
        capsys,
        "memory",
        "--model",
        "cifar_resnet20",
        "--input-size",
        "3",
        "32",
        "32",
        "--batch-size",
        "512",
        "--k",
        "3",
        "--balance",
        "memory",
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    for key in ("e2e_bytes", "local_bytes", "ratio", "cuts", "per_stage_bytes"):
        assert key in report
    assert len(report["cuts"]) == 2 and len(report["per_stage_bytes"]) == 3
    assert report["local_bytes"] == max(report["per_stage_bytes"])
    assert report["ratio"] == report["local_bytes"] / report["e2e_bytes"] < 0.5


def test_plan_prints_a_table_and_lists_cuts(capsys):
    code, out, _ = run(capsys, "plan", "--model", "cifar_resnet20", "--k", "2", "--balance", "even")
    assert code == 0 and "stage" in out and "saved MiB" in out and "output" in out
    code, out, _ = run(capsys, "plan", "--model", "cifar_resnet20", "--list-cuts")
    assert code == 0 and "layer1.0" in out and "layer3.2" in out


def test_list_shows_each_entry_with_its_distribution(capsys):
    code, out, _ = run(capsys, "list", "backbones", "--pattern", "cifar_resnet2*", "--json")
    assert code == 0
    entries = json.loads(out)["entries"]
    assert [(e["name"], e["distribution"]) for e in entries] == [("cifar_resnet20", "splitnet")]


def test_errors_name_the_problem_and_exit_2(capsys):
    code, _, err = run(capsys, "plan", "--model", "cifar_resnet2O", "--k", "2")
    assert code == 2 and "unknown backbone 'cifar_resnet2O'" in err and "cifar_resnet20" in err
    code, _, err = run(capsys, "plan", "--model", "cifar_resnet20", "--k", "500")
    assert code == 2 and "K=500" in err and "choose K <=" in err


def test_option_values_parse_like_python_literals():
    assert parse_value("5") == 5 and parse_value("0.5") == 0.5 and parse_value("true") is True
    assert parse_value("5,0") == (5, 0) and parse_value("bce") == "bce" and parse_value("none") is None


def test_module_entry_point_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "splitnet", "list", "objectives"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "greedy" in proc.stdout and "splitnet" in proc.stdout
