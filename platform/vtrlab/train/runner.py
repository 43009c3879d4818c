"""One training run as a Ray Train (V2) TorchTrainer: N DDP workers (NCCL on GPU, gloo on CPU)."""

from __future__ import annotations

from typing import Any

from vtrlab.config import TrainSpec


def make_trainer(
    spec: TrainSpec,
    name: str,
    storage_path: str,
    tracking: dict[str, Any] | None = None,
    callbacks: list | None = None,
):
    """A TorchTrainer for `spec`; a trainer with the same `name` and `storage_path` resumes from the last
    checkpoint there (Ray Train restores its checkpoint manager from storage), and after a worker failure
    it restarts the workers from the last checkpoint up to `spec.max_failures` times."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from vtrlab.train.loop import train_loop

    use_gpu = spec.gpus_per_worker > 0
    resources = {"CPU": spec.cpus_per_worker}
    if use_gpu:
        resources["GPU"] = spec.gpus_per_worker
    return TorchTrainer(
        train_loop,
        train_loop_config={"spec": spec.model_dump(), "tracking": tracking or {}},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=spec.workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(
            name=name,
            storage_path=storage_path,
            failure_config=FailureConfig(max_failures=spec.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            callbacks=callbacks or [],
        ),
    )
