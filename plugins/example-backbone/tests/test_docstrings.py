"""The examples in the docstrings run and print what they claim."""

import doctest

import example_backbone


def test_docstring_examples():
    result = doctest.testmod(example_backbone)
    assert result.attempted > 0 and result.failed == 0
