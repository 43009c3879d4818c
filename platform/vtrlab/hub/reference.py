"""Model references: `MODEL@ALIAS`, `MODEL/VERSION` or a bare `MODEL` (= `MODEL@champion`), with an optional
`models:/` prefix, resolved to a version of the MLflow model registry. Resolving only reads the registry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vtrlab.config import shown
from vtrlab.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from vtrlab.tracking.client import Tracker
    from vtrlab.tracking.records import VersionRecord

DEFAULT_ALIAS = "champion"
PREFIX = "models:/"
FORMS = "MODEL, MODEL@ALIAS or MODEL/VERSION (optionally prefixed with models:/)"
_NAME = r"[\w][\w.\-]*"
_PATTERN = re.compile(rf"^(?P<model>{_NAME})(?:@(?P<alias>[\w\-]+)|/(?P<version>[1-9][0-9]*))?$")
_LISTED = 20  # at most this many names in an error message
_LISTED_CHARS = 250  # and about this many characters of them
MAX_VERSION = 2**31 - 1  # registries number versions with 32-bit integers


@dataclass(frozen=True)
class ModelReference:
    """A parsed reference: the registered model and either an alias or a version number."""

    model: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return f"{self.model}/{self.version}" if self.version else f"{self.model}@{self.alias}"


def parse_reference(text: str) -> ModelReference:
    """Parse `MODEL@ALIAS`, `MODEL/VERSION` or `MODEL` (alias champion); malformed -> ConfigError."""
    raw = text.strip() if isinstance(text, str) else ""
    body = raw.removeprefix(PREFIX)
    match = _PATTERN.match(body)
    if not match:
        raise ConfigError(f"model reference {shown(text)}: expected {FORMS}, e.g. vtrlab-msrvtt-ViT-B-16@champion")
    version = match["version"]
    return ModelReference(match["model"], alias=None if version else (match["alias"] or DEFAULT_ALIAS), version=version)


def _listing(names: list[str]) -> str:
    """The first names, at most _LISTED of them and about _LISTED_CHARS characters, the rest counted."""
    listed: list[str] = []
    for name in names[:_LISTED]:
        if listed and sum(len(n) + 2 for n in listed) + len(name) > _LISTED_CHARS:
            break
        listed.append(shown(name, 80) if len(name) > 80 else name)
    more = len(names) - len(listed)
    return (", ".join(listed) or "none") + (f" (and {more} more)" if more else "")


def _aliases(tracker: Tracker, model: str) -> dict[str, str]:
    try:
        return tracker.aliases(model)
    except NotFoundError:
        models = tracker.registered_models()
        raise NotFoundError(
            f"no registered model {shown(model)} at {tracker.uri}; registered models: {_listing(models)}"
        ) from None


def _versions_and_aliases(tracker: Tracker, model: str, aliases: dict[str, str]) -> str:
    versions = [v.version for v in tracker.versions(model)]
    listed = [f"{alias} -> {version}" for alias, version in sorted(aliases.items())]
    return f"versions: {_listing(versions)}; aliases: {_listing(listed)}"


def resolve_version(tracker: Tracker, reference: str | ModelReference) -> VersionRecord:
    """The registry's version for `reference` (see `parse_reference`); NotFoundError names the unknown model,
    version or alias and lists what exists."""
    ref = reference if isinstance(reference, ModelReference) else parse_reference(reference)
    aliases = _aliases(tracker, ref.model)
    if ref.alias is not None:
        if ref.alias not in aliases:
            raise NotFoundError(
                f"model {shown(ref.model)} has no alias {shown(ref.alias)}; "
                f"{_versions_and_aliases(tracker, ref.model, aliases)}"
            )
        version = aliases[ref.alias]
    else:
        version = str(ref.version)
    if int(version) > MAX_VERSION:
        raise NotFoundError(
            f"model {shown(ref.model)} has no version {version}; {_versions_and_aliases(tracker, ref.model, aliases)}"
        )
    try:
        return tracker.version(ref.model, version)
    except NotFoundError:
        raise NotFoundError(
            f"model {shown(ref.model)} has no version {version}; {_versions_and_aliases(tracker, ref.model, aliases)}"
        ) from None
