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
    assert [(e["name"], e["distribution"]) for e in entries] == [("cifar_resnet20", "localkit-splitnet")]


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


def test_a_misspelled_model_option_stops_the_command_naming_the_accepted_ones(capsys):
    code, out, err = run(
        capsys, "plan", "--model", "cifar_resnet20", "--model-opt", "num_clases=10", "--k", "2"
    )
    assert code == 2 and out == ""
    assert "error: backbone 'cifar_resnet20'" in err and "does not accept option 'num_clases'" in err
    assert "did you mean 'num_classes'" in err and "It accepts: 'in_chans', 'num_classes'" in err
    assert "Traceback" not in err


def test_a_misspelled_timm_model_option_stops_the_command(capsys):
    code, _, err = run(capsys, "plan", "--model", "resnet10t", "--model-opt", "drop_path=0.1", "--k", "2")
    assert code == 2 and "timm model 'resnet10t' (ResNet) does not accept option 'drop_path'" in err
    assert "did you mean 'drop_path_rate'" in err


def test_a_misspelled_objective_option_stops_the_command(capsys):
    code, _, err = run(
        capsys, "plan", "--model", "cifar_resnet20", "--k", "2", "--objective-opt", "lambda_recn=5"
    )
    assert code == 2 and "objective 'greedy'" in err and "does not accept option 'lambda_recn'" in err
    assert "It accepts no options" in err


def test_a_misspelled_head_option_stops_the_command(capsys):
    argv = ["plan", "--model", "cifar_resnet20", "--k", "2"]
    code, _, err = run(
        capsys, *argv, "--head", "classifier", "--num-classes", "10", "--head-opt", "droput=0.1"
    )
    assert code == 2 and "head 'classifier'" in err and "'droput' (did you mean 'dropout'?)" in err


def test_a_misspelled_dataset_option_stops_training_before_it_starts(capsys, tmp_path):
    code, _, err = run(
        capsys,
        "train",
        "--model",
        "cifar_resnet20",
        "--dataset-opt",
        "augmnet=false",
        "--out",
        str(tmp_path / "run"),
    )
    assert code == 2 and "dataset 'digits'" in err and "'augmnet' (did you mean 'augment'?)" in err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_download_is_refused_by_a_dataset_that_cannot_download(capsys, tmp_path):
    code, _, err = run(
        capsys, "train", "--model", "cifar_resnet20", "--download", "--out", str(tmp_path / "run")
    )
    assert code == 2 and "dataset 'digits'" in err and "does not accept option 'download'" in err


def test_plans_cut_at_block_boundaries_unless_node_granularity_is_asked_for(capsys):
    code, out, _ = run(capsys, "plan", "--model", "cifar_resnet20", "--list-cuts", "--json")
    assert code == 0 and [r["label"] for r in json.loads(out)] == ["stem"] + [
        f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)
    ]
    code, out, _ = run(
        capsys, "plan", "--model", "cifar_resnet20", "--list-cuts", "--cut-granularity", "node"
    )
    assert code == 0 and "layer1.0[add]" in out and "stem.1" in out
    inside = ["plan", "--model", "cifar_resnet20", "--cuts", "layer1.1[add_1]"]
    code, _, err = run(capsys, *inside)
    assert code == 2 and "lies inside a block" in err and "--cut-granularity node" in err
    code, out, _ = run(capsys, *inside, "--cut-granularity", "node", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["cuts"] == ["layer1.1[add_1]"] and shown["granularity"] == "node"
    assert shown["objectives"] == [
        "layer1.1[add_1]: GreedyObjective(classification, 16 channels -> 10 classes)"
    ]
