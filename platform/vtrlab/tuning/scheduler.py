"""ASHA that counts epochs the trial really has and keeps its rungs across a resume.

Ray Tune's ASHA keys its rungs on `training_iteration`, Tune's own counter of results, which starts at
zero again when a resumed trial continues from its Ray Train checkpoint; and `Tuner.restore` brings back
the scheduler as it was created, without the rungs recorded since. `DurableASHA` fixes both:

- its time attribute is `epochs_done`, which the training loop reports (epochs finished, checkpoint
  included), so a resumed trial is judged at the rung of the epochs it has;
- every recorded rung value and every stop decision is written to the ledger as it happens and read back
  when Tune unpickles the scheduler on restore;
- a trial's last epoch is never stopped: a trial that trained every epoch ends on its own (FINISHED), and
  its result still counts for the rung.
"""

from __future__ import annotations

from typing import Any

from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from vtrlab.tuning.ledger import Ledger

TIME_ATTR = "epochs_done"
STATE_KEY = "asha.json"


class DurableASHA(AsyncHyperBandScheduler):
    """ASHA over `epochs_done` with its rungs and stop decisions kept in `ledger` (see the module doc)."""

    def __init__(
        self,
        ledger: Ledger,
        metric: str,
        mode: str,
        epochs: int,
        grace_period: int,
        reduction_factor: float,
    ):
        self.ledger = ledger
        self.epochs = epochs
        self.stopped: dict[str, int] = {}  # trial id -> epochs done when ASHA stopped it
        super().__init__(
            time_attr=TIME_ATTR,
            metric=metric,
            mode=mode,
            max_t=max(epochs, grace_period),
            grace_period=min(grace_period, max(epochs, 1)),
            reduction_factor=reduction_factor,
            stop_last_trials=False,
        )

    # ---- persistence -----------------------------------------------------------------------------
    def _document(self) -> dict[str, Any]:
        bracket = self._brackets[0]
        return {
            "rungs": [[milestone, dict(recorded)] for milestone, recorded in bracket._rungs],
            "stopped": self.stopped,
        }

    def _save(self) -> None:
        self.ledger.put(STATE_KEY, self._document())

    def load(self) -> None:
        """Read the rungs and stop decisions back (what `Tuner.restore` leaves out)."""
        document = self.ledger.get(STATE_KEY)
        if not document:
            return
        saved = {float(milestone): recorded for milestone, recorded in document.get("rungs", [])}
        bracket = self._brackets[0]
        bracket._rungs = [(milestone, dict(saved.get(float(milestone), {}))) for milestone, _ in bracket._rungs]
        self.stopped = {str(k): int(v) for k, v in document.get("stopped", {}).items()}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.load()

    # ---- decisions -------------------------------------------------------------------------------
    def on_trial_add(self, tune_controller, trial) -> None:
        self._trial_info[trial.trial_id] = self._brackets[0]  # one bracket: no random choice

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if TIME_ATTR not in result or self._metric not in result:
            return TrialScheduler.CONTINUE
        if trial.trial_id not in self._trial_info:
            self._trial_info[trial.trial_id] = self._brackets[0]
        action = super().on_trial_result(tune_controller, trial, result)
        done = int(result[TIME_ATTR])
        if done >= self.epochs:
            action = TrialScheduler.CONTINUE  # the last epoch is never cut: the trial finishes itself
        elif action == TrialScheduler.STOP:
            self.stopped[trial.trial_id] = done
        self._save()
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        if trial.trial_id not in self._trial_info:
            return
        if result and TIME_ATTR in result and self._metric in result:
            super().on_trial_complete(tune_controller, trial, result)
            self._save()
        else:
            self._trial_info.pop(trial.trial_id, None)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._trial_info.pop(trial.trial_id, None)

    def rung_of(self, epochs_done: int) -> int:
        """The rung (its epoch milestone) a trial stopped after `epochs_done` epochs was judged at."""
        milestones = sorted(int(m) for m, _ in self._brackets[0]._rungs if m <= epochs_done)
        return milestones[-1] if milestones else epochs_done
