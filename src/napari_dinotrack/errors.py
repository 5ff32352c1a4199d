"""The errors a user can fix, as one family.

Everything the user can act on (a bad file, a wrong setting, missing weights, a missing optional
package, a result folder in use) is a :class:`UserError`; its message says which file or setting,
what is wrong and what to do. The command line turns a ``UserError`` into exit code 2 and the dock
into a readable message; any other exception is a bug.

This module imports nothing of the project, so every layer can raise these errors.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "AnnotationError",
    "BackboneUnavailableError",
    "ConfigError",
    "FolderInUseError",
    "InputError",
    "MissingExtraError",
    "OutputError",
    "UserError",
    "VideoError",
]


class UserError(Exception):
    """Root of the errors the user can fix; the message is meant to be shown as it is."""


class InputError(UserError, ValueError):
    """Bad or missing input: an argument, a file or a setting."""


class ConfigError(InputError):
    """A tracker or run setting that is invalid (wrong type, out of range, unknown name)."""


class AnnotationError(InputError):
    """A LabelMe file that cannot be used; the message names the file, the problem and a fix."""

    DEFAULT_HINT = "Fix it (e.g. in LabelMe or a text editor) or move it out of the result folder."

    def __init__(self, path: str | os.PathLike[str], problem: str, hint: str = DEFAULT_HINT):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}. {hint}")


class VideoError(InputError):
    """A video cannot be opened or decoded, or a frame index is out of range."""


class BackboneUnavailableError(UserError):
    """The requested backbone cannot be loaded; the message says why and lists the remedies.

    ``model`` is the name or path that was asked for.
    """

    def __init__(self, message: str, model: str | None = None):
        super().__init__(message)
        self.model = model


class MissingExtraError(UserError):
    """An optional package is not installed; the message names the extra that installs it."""

    def __init__(self, package: str, extra: str, purpose: str):
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the optional package '{package}', which is not installed. "
            f'Install it with: pip install "napari-dinotrack[{extra}]"'
        )


class OutputError(UserError, OSError):
    """A result file cannot be written: a read-only folder, a full disk, a folder or a locked file in the way.

    It is also an :class:`OSError` (with the original ``errno``), so code that handles disk errors
    keeps handling it; the message names the file the user knows (never a temporary file).
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, hint: str, errno: int | None = None):
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}. {hint}")
        self.errno = errno


class FolderInUseError(UserError):
    """Another run is writing the same result folder; the message names the folder and that run."""
