"""The command line's help: every command listed, every option explained, defaults shown."""

from __future__ import annotations

import argparse

import pytest

from localkit_cityscapes._cli import build_parser


def _help_text(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args([*argv, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_help_lists_every_command_with_a_description_and_option_help(capsys):
    text = _help_text(capsys)
    assert "`" not in text
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    for command, parser in sub.choices.items():
        assert f" {command} " in text
        assert parser.description
        assert all(action.help for action in parser._actions)
        assert "`" not in _help_text(capsys, command)


def test_evaluate_help_shows_defaults(capsys):
    text = _help_text(capsys, "evaluate")
    assert "--batch-size BATCH_SIZE images per evaluation step (default: 1)" in text
    assert "--split SPLIT split to evaluate; val is the split the paper reports (default: val)" in text
    assert (
        "--average {logits,probs} average logits, or softmax probabilities like mmseg (default: logits)"
        in text
    )
