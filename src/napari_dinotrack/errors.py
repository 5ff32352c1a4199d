"""Errors that mean "the user's input needs fixing" (the command line exits with code 2 on these)."""

from __future__ import annotations


class InputError(ValueError):
    """Bad or missing input: the message says which file or setting, what is wrong and what to do."""


def is_input_error(exc: BaseException) -> bool:
    """True for errors caused by the user's files, settings or missing weights rather than a bug."""
    from .backbone.loader import BackboneUnavailableError
    from .io.labelme import AnnotationError
    from .io.video import VideoError

    return isinstance(exc, InputError | AnnotationError | VideoError | BackboneUnavailableError)
