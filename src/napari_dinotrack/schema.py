"""Settings described once, as pydantic models: ranges, choices, help text and a GUI group per field.

:func:`setting` declares a field; :func:`describe` lists the fields for the command line, the
dock's generated panel and the documentation; :func:`validate_settings` turns pydantic's
validation errors into one :class:`~napari_dinotrack.errors.ConfigError` that names the setting,
the problem and, for a misspelt name, the closest known one.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

__all__ = [
    "STRICT",
    "SettingInfo",
    "Settings",
    "describe",
    "explain",
    "load_settings_file",
    "parse_value",
    "setting",
    "validate_settings",
]

STRICT = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False, strict=True)
"""Model config of every settings model: unknown names, NaN/inf and silent type coercion are errors."""

Model = TypeVar("Model", bound=BaseModel)


class Settings(BaseModel):
    """Base of the settings models: strict validation whose failures are ConfigErrors, also on assignment."""

    model_config = STRICT

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(explain(exc, type(self))) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise ConfigError(explain(exc, type(self))) from None


def setting(
    default: Any, description: str, *, ge: float | None = None, le: float | None = None, group: str = "general"
) -> Any:
    """A settings field: default, one-line help, inclusive bounds and the GUI group it belongs to."""
    return Field(default, description=description, ge=ge, le=le, json_schema_extra={"group": group})


@dataclass(frozen=True)
class SettingInfo:
    """One field of a settings model, as the GUI and the command line need it."""

    name: str
    kind: type  # bool, int, float or str
    default: Any
    description: str
    lo: float | None
    hi: float | None
    choices: tuple[str, ...] | None
    group: str
    optional: bool  # None is allowed (it means "derived from another setting")


def describe(model: type[BaseModel]) -> list[SettingInfo]:
    """Every field of ``model`` in declaration order."""
    out = []
    for name, info in model.model_fields.items():
        kind, optional, choices = _unwrap(info.annotation)
        lo = hi = None
        for meta in info.metadata:
            lo = getattr(meta, "ge", lo)
            hi = getattr(meta, "le", hi)
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        out.append(
            SettingInfo(
                name,
                kind,
                info.default,
                info.description or "",
                lo,
                hi,
                choices,
                str(extra.get("group", "general")),
                optional,
            )
        )
    return out


def _unwrap(annotation: Any) -> tuple[type, bool, tuple[str, ...] | None]:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        kind, _, choices = _unwrap(inner[0])
        return kind, True, choices
    if origin is typing.Literal:
        return str, False, tuple(str(a) for a in args)
    return annotation, False, None


def validate_settings(model: type[Model], data: Any, where: str | None = None) -> Model:
    """``model`` built from the mapping ``data``; ConfigError (naming ``where``) when it is not valid."""
    prefix = f"{where}: " if where else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}settings must be a JSON object of name: value, got {type(data).__name__}")
    known = list(model.model_fields)
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f"; known settings: {', '.join(known)}"
            raise ConfigError(f"{prefix}unknown setting {key!r}{extra}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(prefix + explain(exc, model)) from None
    except ConfigError as exc:
        raise ConfigError(prefix + str(exc)) from None


def explain(exc: ValidationError, model: type[BaseModel]) -> str:
    """The first problem of a validation error as one sentence naming the setting."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if not loc:  # a check across several settings: its message names them
        return msg
    return f"{model.__name__}.{loc}: {msg} (got {err.get('input')!r})"


def load_settings_file(model: type[Model], path: str | Path) -> Model:
    """Read a JSON settings file; every problem is a ConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: settings file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder; give the path of a JSON settings file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc}); check the path and its permissions") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); fix or delete it") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a settings file") from None
    except ValueError as exc:  # e.g. a number with more digits than Python converts
        raise ConfigError(f"{path}: not usable JSON ({exc}); fix or delete it") from None
    return validate_settings(model, data, where=str(path))


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false, null), else the text itself."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON (or a number with more digits than Python converts)
        return text
