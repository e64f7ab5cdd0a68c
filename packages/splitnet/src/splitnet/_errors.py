"""Exceptions raised by splitnet, each naming the problem and its fix."""


class SplitError(ValueError):
    """A model, plan or argument that cannot be split as asked."""


class TraceFailure(SplitError):
    """The model cannot be turned into a chain of cut points."""


class NonFiniteLossError(FloatingPointError):
    """A local or task loss became NaN or infinite; training stops at that step."""


class TrainingError(RuntimeError):
    """A run stopped: a non-finite loss (step, stage and loss named) or an unusable checkpoint."""


class CheckpointError(TrainingError):
    """A checkpoint is corrupt, truncated, of another format, or belongs to a different run."""


class RunFolderError(TrainingError):
    """The run folder cannot be used: not writable, full, not a folder, or in use by another run."""


class MetaBuildError(SplitError):
    """A model cannot be built on the meta device, so not one stage at a time (build it whole)."""
