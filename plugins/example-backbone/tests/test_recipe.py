"""docs/plugins.md shows this plugin's pyproject.toml, module and test byte for byte.

A monorepo check: the "Write your own plugin" recipe must be the code that these tests run.
"""

import re
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[1]
DOC = PLUGIN.parents[1] / "docs" / "plugins.md"


def code_blocks(language: str) -> list[str]:
    # a fence may carry attributes after the language (```python needs=numpy)
    return re.findall(rf"^```{language}(?: [^\n]*)?\n(.*?)^```", DOC.read_text(), re.S | re.M)


def test_the_recipe_shows_the_pyproject():
    assert (PLUGIN / "pyproject.toml").read_text() in code_blocks("toml")


def test_the_recipe_shows_the_module():
    assert (PLUGIN / "src" / "example_backbone" / "__init__.py").read_text() in code_blocks("python")


def test_the_recipe_shows_the_test():
    assert (PLUGIN / "tests" / "test_example_backbone.py").read_text() in code_blocks("python")
