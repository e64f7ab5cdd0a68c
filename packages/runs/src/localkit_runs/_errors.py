"""Exceptions of the run folder, shared by every localkit trainer."""


class RunError(RuntimeError):
    """A run cannot go on: its folder or its checkpoint is unusable (``splitnet.TrainingError``
    is this class, so ``except TrainingError`` catches every run problem)."""


class RunFolderError(RunError):
    """The run folder cannot be used: not writable, full, not a folder, or in use by another run."""


class CheckpointError(RunError):
    """A checkpoint is corrupt, truncated, empty, of another format, or belongs to a different run."""
