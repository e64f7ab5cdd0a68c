"""The command line: memory JSON, plan tables, listing, and errors with exit status 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys

import pytest

from splitnet._cli import build_parser, main
from splitnet._config import TrainConfig


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


def test_options_use_the_one_name_value_grammar_of_every_localkit_cli(capsys):
    args = build_parser().parse_args(
        [
            "plan",
            "--model",
            "cifar_resnet20",
            "--objective-opt",
            "lambda-recon=5",
            "--objective-opt",
            "heads=1,2",
        ]
    )
    assert dict(args.objective_opt) == {"lambda_recon": 5, "heads": (1, 2)}
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["plan", "--model", "cifar_resnet20", "--model-opt", "width"])
    assert stop.value.code == 2
    assert "argument --model-opt: options are written NAME=VALUE, got 'width'" in capsys.readouterr().err


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


def _help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def _commands() -> list[str]:
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


def test_help_lists_every_command_without_markup(capsys):
    text = _help_text(capsys)
    assert "`" not in text
    assert {"list", "plan", "memory", "train", "demo", "summarize"} <= set(_commands())
    for command in _commands():
        assert f" {command} " in text, command


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_a_description_and_helps_every_option(capsys, command):
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert sub.choices[command].description, command
    for action in sub.choices[command]._actions:
        assert action.help, (command, action.dest)
    assert "`" not in _help_text(capsys, command)


def test_train_help_shows_the_config_defaults(capsys):
    text = _help_text(capsys, "train").split(" options: ", 1)[1]
    shown = 0
    for field in dataclasses.fields(TrainConfig):
        if isinstance(field.default, bool) or field.default in (None, dataclasses.MISSING):
            continue
        flag = "--" + field.name.replace("_", "-")
        if f"{flag} " not in text:
            continue  # a setting without a flag of its own (options dicts, progress)
        described = text.split(f"{flag} ", 1)[1].split(" --", 1)[0]
        assert described.endswith(f"(default: {field.default})"), (flag, described)
        shown += 1
    assert shown >= 20
    assert "--epochs EPOCHS passes over the training split (default: 10)" in text
    assert "--batch-size BATCH_SIZE examples per training step on each process" in text


def test_train_flags_left_out_take_the_config_default():
    args = build_parser().parse_args(["train", "--model", "cifar_resnet20"])
    assert (args.epochs, args.lr, args.batch_size, args.out, args.seed) == (None, None, None, None, None)


def test_every_train_flag_reaches_the_run():
    """train accepts no flag it would ignore: each one is a TrainConfig setting, an options
    dict or one of the negated switches (it once took --task, --json, --input-size and
    --budget-mib from plan and dropped them)."""
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    settings = {f.name for f in dataclasses.fields(TrainConfig)}
    mapped = {"model_opt", "head_opt", "dataset_opt", "objective_opt", "no_nesterov", "quiet", "help"}
    ignored = [a.dest for a in sub.choices["train"]._actions if a.dest not in settings | mapped]
    assert ignored == []


@pytest.mark.parametrize("flag", [["--task", "segmentation"], ["--json"], ["--input-size", "3", "8", "8"]])
def test_train_refuses_the_planning_only_flags(capsys, flag):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--model", "cifar_resnet20", *flag])
    assert exc.value.code == 2
    assert f"unrecognized arguments: {flag[0]}" in capsys.readouterr().err


def test_demo_help_describes_the_command_and_its_options(capsys):
    text = _help_text(capsys, "demo")
    assert "images.png" in text
    assert "--epochs EPOCHS epochs of each method (default: 12)" in text
    assert "--seed SEED seed of every method's run (default: 0)" in text


def test_training_reports_through_logging_and_the_cli_shows_it_unless_quiet(tmp_path, capsys, caplog):
    import logging

    argv = ["train", "--model", "cifar_resnet20", "--k", "2", "--epochs", "1", "--batch-size", "64"]
    argv += ["--max-steps-per-epoch", "1", "--threads", "1"]
    with caplog.at_level(logging.INFO, logger="splitnet"):
        assert main([*argv, "--out", str(tmp_path / "a")]) == 0
    assert any(r.name == "splitnet._session" and '"epoch": 1' in r.getMessage() for r in caplog.records)
    shown = capsys.readouterr()
    line = '{"epoch": 1, "test_loss"'  # the epoch's line; stdout holds only the final summary
    assert line in shown.err and line not in shown.out and "cut 1 of 1 (layer1.2)" in shown.err
    assert main([*argv, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert line not in capsys.readouterr().err
