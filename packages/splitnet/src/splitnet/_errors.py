"""Exceptions raised by splitnet, each naming the problem and its fix."""

from localkit_runs import CheckpointError, RunError, RunFolderError

__all__ = [
    "CheckpointError",
    "MetaBuildError",
    "NonFiniteLossError",
    "RunFolderError",
    "SplitError",
    "TraceFailure",
    "TrainingError",
]


class SplitError(ValueError):
    """A model, plan or argument that cannot be split as asked."""


class TraceFailure(SplitError):
    """The model cannot be turned into a chain of cut points."""


class NonFiniteLossError(FloatingPointError):
    """A local or task loss became NaN or infinite; training stops at that step."""


# A run stopped: a non-finite loss (step, stage and loss named), an unusable checkpoint or run
# folder. The run folder is localkit-runs' (shared with scoredist), so its error classes are
# too: ``except splitnet.TrainingError`` catches every run problem whichever package raised it.
TrainingError = RunError


class MetaBuildError(SplitError):
    """A model cannot be built on the meta device, so not one stage at a time (build it whole)."""
