"""Uninstalling a plugin removes its entries cleanly; reinstalling brings them back."""

from __future__ import annotations

import json


def names(run_module, group: str) -> set[str]:
    proc = run_module("splitnet", "list", group, "--json")
    assert proc.returncode == 0, proc.stderr
    return {e["name"] for e in json.loads(proc.stdout)["entries"]}


def test_uninstall_and_reinstall_a_plugin(run_module, root):
    assert "example_convnet" in names(run_module, "backbones")
    assert "localkit-example-backbone" in run_module("scoredist", "list").stdout  # its 'median' rule
    removed = run_module("pip", "uninstall", "--yes", "localkit-example-backbone")
    try:
        assert removed.returncode == 0, removed.stderr
        assert "example_convnet" not in names(run_module, "backbones")
        assert "cifar_resnet20" in names(run_module, "backbones")
        proc = run_module("splitnet", "train", "--model", "example_convnet", "--epochs", "1")
        assert proc.returncode == 2
        assert "unknown backbone 'example_convnet'" in proc.stderr and "not installed" in proc.stderr
        rules = run_module("scoredist", "list")
        assert rules.returncode == 0 and "localkit-example-backbone" not in rules.stdout
    finally:
        restored = run_module(
            "pip", "install", "--quiet", "--no-deps", str(root / "plugins" / "example-backbone")
        )
    assert restored.returncode == 0, restored.stderr
    assert "example_convnet" in names(run_module, "backbones")
