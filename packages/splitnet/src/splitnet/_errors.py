"""Exceptions raised by splitnet, each naming the problem and its fix."""


class SplitError(ValueError):
    """A model, plan or argument that cannot be split as asked."""


class TraceFailure(SplitError):
    """The model cannot be turned into a chain of cut points."""
