"""Task runners: how a batch of independent tasks (`fn(*shared, item)` for each item) runs, in this process or
as Ray tasks. `vtrlab.data` takes a runner instead of importing Ray itself, so the data layer can be used and
tested without Ray; `runner_for` turns the CLI's `--executor` into one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from vtrlab.errors import ConfigError, VtrlabError

EXECUTORS = ("ray", "local")


class TaskRunner(Protocol):
    """Runs `fn(*shared, item)` for every item; returns the results in the order of `items`, calling
    `progress(result)` as each one completes (in completion order)."""

    def __call__(
        self,
        fn: Callable[..., Any],
        items: Sequence[Any],
        shared: tuple[Any, ...],
        progress: Callable[[Any], None] | None = None,
    ) -> list[Any]: ...


def local_runner(
    fn: Callable[..., Any],
    items: Sequence[Any],
    shared: tuple[Any, ...],
    progress: Callable[[Any], None] | None = None,
) -> list[Any]:
    """One task after the other, in this process."""
    out = []
    for item in items:
        out.append(fn(*shared, item))
        if progress:
            progress(out[-1])
    return out


def _ensure_ray(num_cpus: int | None):
    import ray

    if not ray.is_initialized():
        pkg_root = str(Path(__file__).resolve().parents[1])
        env = {"PYTHONPATH": os.pathsep.join(p for p in [pkg_root, os.environ.get("PYTHONPATH", "")] if p)}
        if os.environ.get("RAY_ADDRESS"):
            ray.init(runtime_env={"env_vars": env}, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)
    return ray


def ray_runner(num_cpus: int | None = None, max_retries: int = 2) -> TaskRunner:
    """Ray tasks of one CPU each, retried `max_retries` times; connects to `RAY_ADDRESS` when set, else starts a
    local Ray with `num_cpus` (default: all), or uses the Ray already initialised by the caller. A task's own
    vtrlab error (bad data, storage, config) comes back as itself, not wrapped in Ray's error."""

    def run(
        fn: Callable[..., Any],
        items: Sequence[Any],
        shared: tuple[Any, ...],
        progress: Callable[[Any], None] | None = None,
    ) -> list[Any]:
        ray = _ensure_ray(num_cpus)
        remote = ray.remote(num_cpus=1, max_retries=max_retries)(fn)
        shared_refs = [ray.put(value) for value in shared]
        refs = [remote.remote(*shared_refs, item) for item in items]
        index = {ref: i for i, ref in enumerate(refs)}
        results: list[Any] = [None] * len(refs)
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                try:
                    results[index[ref]] = ray.get(ref)
                except Exception as exc:  # unwrap RayTaskError to our own error types
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, VtrlabError):
                        raise cause from None
                    raise
                if progress:
                    progress(results[index[ref]])
        return results

    return run


def runner_for(executor: str, num_cpus: int | None = None) -> TaskRunner:
    """The runner an `--executor` names: `ray` (Ray tasks) or `local` (in this process)."""
    if executor == "ray":
        return ray_runner(num_cpus)
    if executor == "local":
        return local_runner
    raise ConfigError(f"executor {executor!r}: expected {' or '.join(EXECUTORS)}")
