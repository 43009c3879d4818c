"""What the tracking interface hands back: vtrlab's own small records of runs and registry versions, so no
module outside `vtrlab.tracking` sees an MLflow entity."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

TAG_KIND = "vtrlab.kind"  # sweep | trial | train | regression | evaluation
TAG_KEY = "vtrlab.key"  # a run's stable identity: a restarted trial or a resumed sweep finds its run by it
TAG_PARENT = "mlflow.parentRunId"
TAG_ERROR = "error"  # why a FAILED run failed (one line, bounded)
TAG_STOPPED = "asha_stopped"  # a KILLED trial: "after epoch N (rung M)"
TAG_HEARTBEAT = "vtrlab.heartbeat"  # a driver's last sign of life (unix seconds) on its top-level run
TAG_DRIVER = "vtrlab.driver"  # host:pid of the driver that owns the run


class RunState(StrEnum):
    """MLflow's run states as vtrlab uses them: FINISHED (ran to the end), FAILED (an error, tagged),
    KILLED (stopped by ASHA, tagged with the rung), RUNNING (in progress, or left by a dead driver)."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    SCHEDULED = "SCHEDULED"

    @property
    def terminal(self) -> bool:
        return self in (RunState.FINISHED, RunState.FAILED, RunState.KILLED)


@dataclass(frozen=True)
class RunRecord:
    """One run: identity, state, timing (ms since the epoch), tags, params and latest metrics."""

    run_id: str
    name: str
    experiment_id: str
    status: RunState
    start_ms: int
    end_ms: int | None
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def parent_id(self) -> str | None:
        return self.tags.get(TAG_PARENT)

    @property
    def kind(self) -> str:
        return self.tags.get(TAG_KIND, "")

    @property
    def key(self) -> str:
        return self.tags.get(TAG_KEY, "")

    @property
    def hours(self) -> float:
        end = self.end_ms or self.start_ms
        return max(0.0, (end - self.start_ms) / 3_600_000) if self.start_ms else 0.0


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str


@dataclass
class VersionRecord:
    """A version of a registered model: where its files are (`source`), the run it came from, tags, aliases."""

    model: str
    version: str
    run_id: str
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)
    created_ms: int = 0

    @property
    def reference(self) -> str:
        return f"{self.model}/{self.version}"


@dataclass(frozen=True)
class ArtifactFile:
    path: str
    size: int | None
    is_dir: bool
