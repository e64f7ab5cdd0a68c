"""What a factory's ``features`` and ``num_classes`` keywords ask for."""

from __future__ import annotations


def resolve_classes(name: str, features: bool | None, num_classes: int | None, default: int) -> int | None:
    """``None`` for a features model, else the number of classes of its logits.

    Features are the default; ``num_classes`` asks for logits, and ``features=False`` alone for
    the pretrained head's ``default`` classes.

    Raises:
        ValueError: ``features=True`` together with ``num_classes``.
    """
    if features and num_classes is not None:
        raise ValueError(
            f"{name}: features=True returns features, num_classes={num_classes} asks for logits; "
            "pass only one of them"
        )
    if num_classes is not None:
        return num_classes
    return default if features is False else None
