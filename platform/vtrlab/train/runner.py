"""One training run as a Ray Train (V2) TorchTrainer: N DDP workers (NCCL on GPU, gloo on CPU)."""

from __future__ import annotations

from typing import Any

from ray.train.torch import TorchTrainer
from ray.train.v2._internal.execution.failure_handling import DefaultFailurePolicy, FailureDecision

from vtrlab.config import TrainSpec


class UserErrorsAreFinal(DefaultFailurePolicy):
    """Ray Train's failure policy, except that a worker failing with one of vtrlab's bad-input errors (a
    corrupt shard, an unreadable manifest, a wrong knob) is not retried: the same input fails the same way,
    and the user should get the one-line error at once, not after every restart."""

    def make_decision(self, training_failed_error) -> FailureDecision:
        from vtrlab.train.tracked import user_error

        if user_error(training_failed_error) is not None:
            return FailureDecision.RAISE
        return super().make_decision(training_failed_error)


class VtrlabTorchTrainer(TorchTrainer):
    """TorchTrainer with `UserErrorsAreFinal`. Ray Train 2.60 has no public hook for a failure policy;
    its controller is built by `_initialize_and_run_controller`, which takes the policy as an argument."""

    def _initialize_and_run_controller(self, **kwargs: Any):
        kwargs["failure_policy"] = UserErrorsAreFinal(self.run_config.failure_config)
        return super()._initialize_and_run_controller(**kwargs)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: `vtrlab.train.loop.train_loop`, imported in the worker. The trainer
    pickles this function by reference, so the process that builds the trainer (a Tune trial actor) does
    not import the model code (open_clip and torchvision) it never runs."""
    from vtrlab.train.loop import train_loop

    train_loop(config)


def make_trainer(
    spec: TrainSpec,
    name: str,
    storage_path: str,
    tracking: dict[str, Any] | None = None,
    callbacks: list | None = None,
) -> TorchTrainer:
    """A TorchTrainer for `spec`; a trainer with the same `name` and `storage_path` resumes from the last
    checkpoint there (Ray Train restores its checkpoint manager from storage), and after a worker failure
    it restarts the workers from the last checkpoint up to `spec.max_failures` times."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig

    from vtrlab.storage import pyarrow_filesystem

    filesystem, path = pyarrow_filesystem(storage_path)  # s3:// with vtrlab's retry configuration
    use_gpu = spec.gpus_per_worker > 0
    resources = {"CPU": spec.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = spec.gpus_per_worker
    return VtrlabTorchTrainer(
        train_loop_per_worker,
        train_loop_config={"spec": spec, "tracking": tracking or {}},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=spec.workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=name,
            storage_path=path,
            storage_filesystem=filesystem,
            failure_config=FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            callbacks=callbacks or [],
        ),
    )
