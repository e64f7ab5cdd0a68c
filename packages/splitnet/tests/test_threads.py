"""The default thread count backs off on a shared machine and can be set."""

from __future__ import annotations

import os

import pytest
import torch

from splitnet._threads import default_threads


@pytest.fixture
def machine(monkeypatch):
    """A machine with the given physical cores, usable CPUs and 1-minute load average."""
    monkeypatch.delenv("SPLITNET_THREADS", raising=False)

    def make(cores: int, usable: int, load: float):
        monkeypatch.setattr(torch, "get_num_threads", lambda: cores)
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(usable)), raising=False)
        monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))

    return make


@pytest.mark.parametrize(
    ("cores", "usable", "load", "threads"),
    [(8, 8, 0.0, 8), (8, 2, 0.0, 2), (2, 2, 1.2, 1), (2, 2, 7.0, 1), (16, 8, 3.4, 5)],
)
def test_default_is_the_fewest_of_cores_usable_and_idle_cpus(machine, cores, usable, load, threads):
    machine(cores, usable, load)
    assert default_threads() == threads


def test_environment_variable_sets_the_threads(machine, monkeypatch):
    machine(2, 2, 7.0)
    monkeypatch.setenv("SPLITNET_THREADS", "3")
    assert default_threads() == 3


@pytest.mark.parametrize("value", ["0", "two", "-1", ""])
def test_environment_variable_must_be_a_positive_integer(monkeypatch, value):
    monkeypatch.setenv("SPLITNET_THREADS", value)
    with pytest.raises(ValueError, match="SPLITNET_THREADS must be an integer >= 1"):
        default_threads()
