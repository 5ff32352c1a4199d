"""``napari-dinotrack settings``: every tracker setting with its default, range and meaning."""

from __future__ import annotations

import argparse
import json

from ..tracking.config import PRESETS


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "settings",
        help="list the tracker settings (defaults, ranges, meaning) or print a preset as JSON",
        description="List every tracker setting. With --json, print the settings (defaults, or a preset) as "
        "a JSON file to edit and pass to `track --config`.",
    )
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS), help="show this preset's values")
    parser.add_argument("--json", action="store_true", help="print the values as a settings JSON file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..tracking.config import TrackerConfig

    config = TrackerConfig.preset(args.preset) if args.preset else TrackerConfig()
    if args.json:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    print(settings_table(config))
    return 0


def settings_table(config=None) -> str:
    """A Markdown table of the settings (the README's table is this text)."""
    from ..schema import describe
    from ..tracking.config import TrackerConfig

    config = config or TrackerConfig()
    lines = ["| setting | default | range | meaning |", "| --- | --- | --- | --- |"]
    for info in describe(TrackerConfig):
        value = getattr(config, info.name)
        shown = "empty" if value is None else json.dumps(value)
        if info.choices:
            span = " / ".join(info.choices)
        elif info.lo is not None or info.hi is not None:
            span = f"{_num(info.lo)} – {_num(info.hi)}"
        else:
            span = "true / false" if info.kind is bool else ""
        lines.append(f"| `{info.name}` | {shown} | {span} | {info.description} |")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    if value is None:
        return "…"
    return f"{value:g}"
