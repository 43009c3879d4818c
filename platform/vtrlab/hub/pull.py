"""`pull`: copy a registered adapter version to a directory, verified, with a `registry.json` saying where it
came from. The registry is only read. The copy is staged next to the destination and renamed into place, so
a failed pull leaves nothing half-written and a re-pull replaces an earlier one whole."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from vtrlab.errors import ArtifactError, ConfigError
from vtrlab.hub.reference import ModelReference, resolve_version
from vtrlab.hub.verify import verify_backbone

if TYPE_CHECKING:
    from torch import nn

    from vtrlab.model.adapter_config import AdapterConfig
    from vtrlab.model.backbone import BackboneInfo
    from vtrlab.model.dual_encoder import VideoTextDualEncoder
    from vtrlab.tracking.client import Tracker
    from vtrlab.tracking.records import VersionRecord

REGISTRY_NAME = "registry.json"
PULL_FORMAT = "vtrlab-pull/1"


@dataclass(frozen=True)
class PulledAdapter:
    """A verified local copy of a registered adapter version (what `registry.json` records)."""

    path: Path
    model: str
    version: str
    aliases: list[str]
    run_id: str
    source: str
    method: str
    knobs: dict[str, Any]
    backbone: dict[str, Any]
    weights_sha256: str
    verified_weights: str | None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    run_params: dict[str, str] = field(default_factory=dict)
    tracking_uri: str = ""
    pulled_at: str = ""

    @property
    def reference(self) -> str:
        return f"{self.model}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"format": PULL_FORMAT, **asdict(self), "path": str(self.path)}

    @classmethod
    def read(cls, directory: str | os.PathLike) -> PulledAdapter:
        """The `registry.json` of a pulled directory; ArtifactError when it is missing or unreadable."""
        path = Path(directory) / REGISTRY_NAME
        try:
            data = json.loads(path.read_text())
            names = {f.name for f in fields(cls)}
            return cls(**{**{k: v for k, v in data.items() if k in names}, "path": Path(directory)})
        except (OSError, ValueError, TypeError) as err:
            raise ArtifactError(f"{path}: not a readable {REGISTRY_NAME} of a vtrlab pull ({err})") from err


def cache_lock(directory: Path, timeout: float = 600.0):
    """An exclusive file lock beside `directory` (`.<name>.lock`), held while it is checked, pulled and
    read, so two processes never write the same copy at once."""
    from filelock import FileLock

    directory = Path(directory).expanduser().absolute()
    directory.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(directory.with_name(f".{directory.name}.lock")), timeout=timeout)


def open_registry(tracking_uri: str | None = None) -> Tracker:
    """The tracking store at `tracking_uri`, else MLFLOW_TRACKING_URI, else the embedded store (checked)."""
    from vtrlab.tracking.client import Tracker
    from vtrlab.tracking.store import check_tracking_server

    tracker = Tracker(tracking_uri)
    check_tracking_server(tracker.uri)
    return tracker


def pull(
    reference: str | ModelReference,
    out_dir: str | os.PathLike,
    weights: str | os.PathLike | None = None,
    tracking_uri: str | None = None,
) -> PulledAdapter:
    """Download the version `reference` names into `out_dir`, verify it loads (checksum, backbone fingerprint
    with `weights`, default the recorded ones, method, knobs, finite tensors) and write `registry.json`
    beside it. A bad reference or destination is refused before anything is downloaded or created."""
    _check_destination(Path(out_dir).expanduser().absolute())
    tracker = open_registry(tracking_uri)
    version = resolve_version(tracker, reference)
    with cache_lock(Path(out_dir)):
        pulled, _ = pull_version(tracker, version, out_dir, weights)
    return pulled


def pull_version(
    tracker: Tracker,
    version: VersionRecord,
    out_dir: str | os.PathLike,
    weights: str | os.PathLike | None = None,
) -> tuple[PulledAdapter, VideoTextDualEncoder]:
    """Pull a resolved version (see `pull`); also returns the encoder the check loaded it into, so a caller
    uses it without loading the backbone twice."""
    from vtrlab.model.artifacts import read_adapter_config, verify_checksum

    out = Path(out_dir).expanduser().absolute()
    _check_destination(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.pull-"))
    try:
        directory = _download(tracker, version, staging / "download")
        origin = f"{version.model} version {version.version} ({version.source})"
        try:
            config = read_adapter_config(directory)
        except ArtifactError as err:
            raise ArtifactError(f"{origin}: {_in_artifact(str(err), directory)}") from None
        try:
            checksum = verify_checksum(directory, config, origin)
        except ArtifactError as err:
            raise ArtifactError(_in_artifact(str(err), directory)) from None
        backbone = verify_backbone(config, weights, origin)
        encoder = _loaded(directory, config, backbone, origin)
        pulled = PulledAdapter(
            path=out,
            model=version.model,
            version=version.version,
            aliases=sorted(version.aliases),
            run_id=version.run_id or "",
            source=version.source,
            method=config.method,
            knobs=config.knobs,
            backbone=config.backbone.model_dump(mode="json"),
            weights_sha256=checksum,
            verified_weights=backbone[1].weights,
            metrics=version_metrics(version.tags),
            tags=dict(version.tags),
            run_params=_run_params(tracker, version.run_id),
            tracking_uri=_public_uri(tracker.uri),
            pulled_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        (directory / REGISTRY_NAME).write_text(json.dumps(pulled.to_dict(), indent=2, sort_keys=True))
        _move_into_place(directory, out, staging)
        return pulled, encoder
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def version_metrics(tags: dict[str, str]) -> dict[str, float]:
    """The `metric.<name>` tags a registered version carries, as numbers."""
    metrics = {}
    for key, value in tags.items():
        if key.startswith("metric."):
            try:
                metrics[key.removeprefix("metric.")] = float(value)
            except ValueError:
                continue
    return metrics


def _loaded(
    directory: Path, config: AdapterConfig, backbone: tuple[nn.Module, BackboneInfo], origin: str
) -> VideoTextDualEncoder:
    """The recorded method built on the verified backbone with the adapter loaded (knobs, tensor names,
    shapes, finite values, evaluation settings): a pull never hands over an adapter that cannot load."""
    from vtrlab.model.adapter_config import cut
    from vtrlab.model.artifacts import load_adapter_into
    from vtrlab.model.factory import create_model

    clip, info = backbone
    try:
        encoder = create_model(config.method, info.name, knobs=config.knobs, clip=clip, backbone_info=info)
        return load_adapter_into(encoder, directory)
    except (ArtifactError, ConfigError) as err:
        raise ArtifactError(f"{origin}: {cut(_in_artifact(str(err), directory), 600)}") from None


def _in_artifact(message: str, directory: Path) -> str:
    """`message` with the staging folder's paths made relative to the artifact (it is gone after a failed
    pull; the origin names the version and its source)."""
    return message.replace(f"{directory}{os.sep}", "").replace(str(directory), "the artifact folder")


def _check_destination(out: Path) -> None:
    """Refuse an --out that is a file, lies under one, or is a folder holding anything but an earlier pull."""
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker == out:
        raise ConfigError(f"--out {out}: exists and is not a directory; choose another --out")
    if blocker is not None:
        raise ConfigError(f"--out {out}: {blocker} is a file, not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / REGISTRY_NAME).is_file():
        raise ConfigError(
            f"--out {out}: not empty and not an earlier pull (no {REGISTRY_NAME}); choose another --out or empty it"
        )


def _download(tracker: Tracker, version: VersionRecord, destination: Path) -> Path:
    destination.mkdir()
    try:
        local = tracker.download_uri(version.source, destination)
    except Exception as err:  # the store's own errors (a missing artifact, a refused or broken download)
        from vtrlab.model.adapter_config import cut

        raise ArtifactError(
            f"{version.model} version {version.version}: cannot download its artifact {cut(version.source)} "
            f"({cut(str(err) or type(err).__name__)})"
        ) from err
    if not local.is_dir():
        raise ArtifactError(
            f"{version.model} version {version.version}: {version.source} is a file, not an adapter directory"
        )
    return adapter_dir(local, f"{version.model} version {version.version} ({version.source})")


def adapter_dir(local: Path, origin: str) -> Path:
    """The adapter inside a downloaded version: the folder itself (a plain `adapter/` artifact), or, for an
    MLflow logged model (vtrlab's pyfunc), the folder its MLmodel names for the `adapter` artifact, which
    must lie inside the model."""
    mlmodel = local / "MLmodel"
    if not mlmodel.is_file():
        return local
    from vtrlab.config import parse_yaml
    from vtrlab.model.adapter_config import cut, shorten

    try:
        flavor = parse_yaml(mlmodel.read_text(), str(mlmodel))["flavors"]["python_function"]
        relative = flavor["artifacts"]["adapter"]["path"]
    except (KeyError, TypeError, ConfigError, OSError, UnicodeDecodeError) as err:
        raise ArtifactError(
            f"{origin}: MLmodel names no `adapter` artifact of a vtrlab pyfunc ({cut(str(err))})"
        ) from None
    try:
        directory = (local / str(relative)).resolve()
        inside = directory.is_relative_to(local.resolve()) and directory.is_dir()
    except (OSError, ValueError):
        inside = False
    if not inside:
        raise ArtifactError(f"{origin}: MLmodel's adapter path {shorten(relative)} is not a folder inside the model")
    return directory


def _move_into_place(directory: Path, out: Path, staging: Path) -> None:
    _check_destination(out)  # again: another process may have written there meanwhile
    if not out.exists():
        os.rename(directory, out)
        return
    previous = staging / "previous"
    os.rename(out, previous)
    try:
        os.rename(directory, out)
    except BaseException:
        os.rename(previous, out)
        raise


def _run_params(tracker: Tracker, run_id: str | None) -> dict[str, str]:
    if not run_id:
        return {}
    try:
        return dict(tracker.run(run_id).params)
    except Exception:  # the run was deleted; the version still stands on its own
        return {}


def _public_uri(uri: str) -> str:
    """`uri` without a password, if it carries one."""
    parsed = urlparse(uri)
    if not parsed.password:
        return uri
    host = parsed.hostname or ""
    return parsed._replace(netloc=f"{parsed.username}:***@{host}" + (f":{parsed.port}" if parsed.port else "")).geturl()
