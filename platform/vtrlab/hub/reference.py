"""Model references: `MODEL@ALIAS`, `MODEL/VERSION` or a bare `MODEL` (= `MODEL@champion`), with an optional
`models:/` prefix, resolved to a version of the MLflow model registry. Resolving only reads the registry."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vtrlab.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel
    from mlflow.tracking import MlflowClient

DEFAULT_ALIAS = "champion"
PREFIX = "models:/"
FORMS = "MODEL, MODEL@ALIAS or MODEL/VERSION (optionally prefixed with models:/)"
_NAME = r"[\w][\w.\-]*"
_PATTERN = re.compile(rf"^(?P<model>{_NAME})(?:@(?P<alias>[\w\-]+)|/(?P<version>[1-9][0-9]*))?$")
_LISTED = 20  # at most this many names in an error message


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
        raise ConfigError(f"model reference {text!r}: expected {FORMS}, e.g. vtrlab-msrvtt-ViT-B-16@champion")
    version = match["version"]
    return ModelReference(match["model"], alias=None if version else (match["alias"] or DEFAULT_ALIAS), version=version)


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_LISTED]) or "none"
    return shown + (f" (and {len(names) - _LISTED} more)" if len(names) > _LISTED else "")


def _is_missing(err: Exception) -> bool:
    return getattr(err, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


def _registered_model(client: MlflowClient, name: str) -> RegisteredModel:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if not _is_missing(err):
            raise
    models = sorted(m.name for m in client.search_registered_models())
    raise NotFoundError(f"no registered model {name!r} at {client.tracking_uri}; registered models: {_listing(models)}")


def _versions_and_aliases(client: MlflowClient, model: RegisteredModel) -> str:
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{model.name}'"))
    aliases = [f"{alias} -> {version}" for alias, version in sorted(model.aliases.items())]
    return f"versions: {_listing([str(v) for v in versions])}; aliases: {_listing(aliases)}"


def resolve_version(client: MlflowClient, reference: str | ModelReference) -> ModelVersion:
    """The registry's version for `reference` (see `parse_reference`); NotFoundError names the unknown model,
    version or alias and lists what exists."""
    from mlflow.exceptions import MlflowException

    ref = reference if isinstance(reference, ModelReference) else parse_reference(reference)
    model = _registered_model(client, ref.model)
    if ref.alias is not None:
        if ref.alias not in model.aliases:
            raise NotFoundError(
                f"model {ref.model!r} has no alias {ref.alias!r}; {_versions_and_aliases(client, model)}"
            )
        version = str(model.aliases[ref.alias])
    else:
        version = str(ref.version)
    try:
        found = client.get_model_version(ref.model, version)
    except MlflowException as err:
        if not _is_missing(err):
            raise
        raise NotFoundError(
            f"model {ref.model!r} has no version {version}; {_versions_and_aliases(client, model)}"
        ) from None
    if not found.aliases:  # some stores leave aliases out of a version; the registered model has them
        found.aliases = [alias for alias, v in model.aliases.items() if str(v) == version]
    return found
