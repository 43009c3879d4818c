"""Training mode: every (entry, seed) of a suite is one tracked Ray Train run; one Ray Tune grid runs them
all (the same Tune runner as sweeps, `vtrlab.tuning.runner`, without search or ASHA).

Each trial logs into its own MLflow child run of the regression run, tagged like a sweep trial plus `seed`,
`entry` and `regression=true`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vtrlab.config import TrainSpec
from vtrlab.regress.suite import Suite
from vtrlab.train.tracked import RunIdentity, run_tags
from vtrlab.tuning.runner import TrialOutcome


def seed_run_key(run_key: str, entry_key: str, seed: int) -> str:
    """The `vtrlab.key` of one seed's run (a restarted trial logs into the same run)."""
    return f"{run_key}/{entry_key}/seed{seed}"


def seed_labels(suite: Suite) -> dict[str, tuple[int, int]]:
    """{"<entry>/seed<seed>": (entry index, seed)}: the grid, with readable labels in progress lines."""
    return {
        f"{entry.key}/seed{seed}": (index, seed)
        for index, entry in enumerate(suite.entries)
        for seed in suite.seeds_of(entry)
    }


@dataclass(frozen=True)
class SeedTrials:
    """The trial factory of a regression: grid config {"run": label} -> that entry and seed's run."""

    suite: dict[str, Any]  # the Suite, as JSON
    run_key: str
    parent_run_id: str
    experiment: str

    @property
    def group(self) -> str:
        return self.run_key

    def _where(self, config: dict[str, Any]) -> tuple[Suite, int, int]:
        suite = Suite.model_validate(self.suite)
        index, seed = seed_labels(suite)[config["run"]]
        return suite, index, seed

    def spec(self, config: dict[str, Any]) -> TrainSpec:
        suite, index, seed = self._where(config)
        return suite.train_spec_of(suite.entries[index], seed)

    def identity(self, config: dict[str, Any], trial_id: str) -> RunIdentity:
        from vtrlab.regress.tracking import regression_tags

        suite, index, seed = self._where(config)
        entry = suite.entries[index]
        tags = {**run_tags(self.spec(config), "trial"), **regression_tags(suite, entry=entry.key, seed=str(seed))}
        return RunIdentity(
            experiment=self.experiment,
            key=seed_run_key(self.run_key, entry.key, seed),
            name=f"{entry.key}-seed{seed}",
            tags=tags,
            parent_run_id=self.parent_run_id,
        )


def train_all(
    suite: Suite, factory: SeedTrials, root: str, tracking_uri: str, verbose: bool, say
) -> dict[tuple[int, int], TrialOutcome]:
    """Fit every (entry index, seed) once (retried per the suite's budget); {(index, seed): outcome}."""
    from ray import tune

    from vtrlab.train.preflight import DRIVER_SHARE
    from vtrlab.tuning.ledger import Ledger
    from vtrlab.tuning.runner import TuneJob, run_job

    labels = seed_labels(suite)
    job = TuneJob(
        label=f"regression {suite.name}",
        root=root,
        ledger=Ledger(root),
        factory=factory,
        tracking_uri=tracking_uri,
        num_samples=1,
        max_concurrent=suite.budget.max_concurrent,
        cpus_per_trial=suite.budget.cpus_per_trial,
        trial_retries=suite.budget.trial_retries,
        epochs=0,
        resources={suite.budget.driver_resource: DRIVER_SHARE} if suite.budget.driver_resource else {},
        param_space={"run": tune.grid_search(list(labels))},
        verbose=verbose,
        say=say,
    )
    return {labels[outcome.config["run"]]: outcome for outcome in run_job(job)}
