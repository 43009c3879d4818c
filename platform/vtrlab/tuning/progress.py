"""Readable progress of a Tune experiment: one line when a trial starts and one when it ends (Ray Tune's
own status tables only with `--verbose`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from ray.tune import Callback

SHOWN = ("t2v_R1", "v2t_R1", "rsum")


class TrialLines(Callback):
    """`label [k/n] trial ID: started (config)` and `... finished|stopped|failed after E epochs, t2v_R1 ...`."""

    def __init__(self, label: str, total: int, epochs: int, say: Callable[[str], None] = print):
        self.label, self.total, self.epochs, self.say = label, total, epochs, say
        self.started: dict[str, float] = {}
        self.last: dict[str, dict] = {}
        self.ended = 0

    def __getstate__(self) -> dict:  # Tune pickles its callbacks with the experiment; `say` may hold a console
        return {**self.__dict__, "say": _stderr}

    def _config(self, trial) -> str:
        shown = {k: v for k, v in (trial.config or {}).items() if not str(k).startswith("_")}
        parts = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()]
        return f" ({', '.join(parts)})" if parts else ""

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.started.setdefault(trial.trial_id, time.monotonic())
        self.say(f"{self.label}: trial {trial.trial_id} started{self._config(trial)}")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self.last[trial.trial_id] = result

    def _end(self, trial, how: str) -> None:
        self.ended += 1
        result = self.last.get(trial.trial_id, {})
        epochs = int(result.get("epochs_done", 0))
        metrics = ", ".join(f"{k} {result[k]:.1f}" for k in SHOWN if isinstance(result.get(k), int | float))
        seconds = time.monotonic() - self.started.get(trial.trial_id, time.monotonic())
        detail = f" after {epochs} epoch{'s' * (epochs != 1)}" + (f", {metrics}" if metrics else "")
        self.say(f"{self.label} [{self.ended}/{self.total}]: trial {trial.trial_id} {how}{detail} ({seconds:.0f} s)")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        done = int(self.last.get(trial.trial_id, {}).get("epochs_done", 0))
        self._end(trial, "finished" if done >= self.epochs else "stopped by ASHA")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self._end(trial, "failed")

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.say(f"{self.label}: trial {trial.trial_id} failed; retrying it from its last checkpoint")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
