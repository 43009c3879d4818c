"""`vtrlab submit SPEC --address http://HEAD:8265` and `vtrlab jobs status|logs|stop JOB_ID`."""

from __future__ import annotations

from typing import Annotated

import typer

jobs_app = typer.Typer(help="Ray Jobs submitted by `vtrlab submit`.", no_args_is_help=True)
AddressOption = Annotated[str | None, typer.Option(help="Ray dashboard, e.g. http://HEAD:8265 (default: RAY_ADDRESS)")]


def submit_command(
    spec: Annotated[str, typer.Argument(help="sweep spec YAML inside this repository")],
    address: AddressOption = None,
    resume: Annotated[bool, typer.Option(help="resume the spec's interrupted sweep")] = False,
) -> None:
    """Submit a sweep to a Ray cluster as a Ray Job; prints the job id."""
    from vtrlab.jobs import submit_sweep

    print(submit_sweep(spec, address, resume=resume))


@jobs_app.command("status")
def status(job_id: str, address: AddressOption = None) -> None:
    """The job's status (PENDING, RUNNING, SUCCEEDED, FAILED, STOPPED)."""
    from vtrlab.jobs import job_status

    print(job_status(job_id, address))


@jobs_app.command("logs")
def logs(job_id: str, address: AddressOption = None) -> None:
    """The job's driver logs so far."""
    from vtrlab.jobs import job_logs

    print(job_logs(job_id, address), end="")


@jobs_app.command("stop")
def stop(job_id: str, address: AddressOption = None) -> None:
    """Ask the cluster to stop the job."""
    from vtrlab.jobs import stop_job

    stopped = stop_job(job_id, address)
    print("stopping" if stopped else "already finished")
