"""Helpers shared by the CLI's command groups: `--set key=value` parsing and JSON/table output."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import yaml

from vtrlab.config import shown
from vtrlab.errors import ConfigError


def parse_assignments(items: Iterable[str] | None, option: str = "--set") -> dict[str, Any]:
    """`["width=32", "cmt=false", "targets=[q,v]"]` -> {"width": 32, "cmt": False, "targets": ["q", "v"]}.

    Values are read as YAML scalars/flow lists, so numbers, booleans, null and lists need no quoting.
    """
    values: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{option} {shown(item)}: expected key=value")
        try:
            values[key] = yaml.safe_load(raw) if raw.strip() else ""
        except (yaml.YAMLError, ValueError, RecursionError) as err:  # ValueError: e.g. a 5000-digit number
            problem = " ".join(str(err).split())
            raise ConfigError(f"{option} {shown(item)}: cannot read the value of {key} ({shown(problem)})") from None
    return values


def print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, sort_keys=False, default=str))
