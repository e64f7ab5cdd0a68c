"""Exceptions raised by splitnet, each naming the problem and its fix."""


class SplitError(ValueError):
    """A model, plan or argument that cannot be split as asked."""


class TraceFailure(SplitError):
    """The model cannot be turned into a chain of cut points."""


class NonFiniteLossError(FloatingPointError):
    """A local or task loss became NaN or infinite; training stops at that step."""
