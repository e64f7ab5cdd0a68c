"""NAME=VALUE: one grammar for every command line, and a clear error for anything else."""

from __future__ import annotations

import argparse
import math

import pytest

from localkit_registry import parse_option, parse_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e-3", 0.001),
        ("true", True),
        ("False", False),
        ("null", None),
        ("None", None),
        ('"3"', "3"),
        ("[1, 2]", [1, 2]),
        ('{"a": 1}', {"a": 1}),
        ("512,1024", (512, 1024)),
        ("6, 12, 18", (6, 12, 18)),
        ("a,b", ("a", "b")),
        ("resnet50", "resnet50"),
        ("x=y", "x=y"),
    ],
)
def test_values_read_the_same_on_every_command_line(text, value):
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_nan_is_a_float_not_a_string():
    assert math.isnan(parse_value("NaN"))


def test_an_option_without_a_value_is_refused_not_passed_on_as_an_empty_string():
    for text in ("width=", "width=  "):
        with pytest.raises(argparse.ArgumentTypeError, match=r"option 'width' has no value"):
            parse_option(text)
    assert parse_option('width=""') == ("width", "")


@pytest.mark.parametrize("text", ["width", "=3", " =3", ""])
def test_an_option_without_a_name_or_an_equals_sign_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match=r"options are written NAME=VALUE, got"):
        parse_option(text)


def test_argparse_names_the_flag_and_the_bad_option(capsys):
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--model-opt", type=parse_option, action="append", default=[])
    assert dict(
        parser.parse_args(["--model-opt", "drop-rate=0.1", "--model-opt", "img_size=32"]).model_opt
    ) == {
        "drop_rate": 0.1,
        "img_size": 32,
    }
    with pytest.raises(SystemExit):
        parser.parse_args(["--model-opt", "width"])
    assert "argument --model-opt: options are written NAME=VALUE, got 'width'" in capsys.readouterr().err
