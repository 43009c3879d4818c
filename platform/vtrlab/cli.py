"""The `vtrlab` command line.

Exit codes: 0 success; 1 a regression found by `vtrlab regress` (or an unexpected failure, with its
traceback); 2 bad input (a spec, file, option or artifact that is wrong, named in one line); 3 something
named that does not exist (an unknown model, version or alias, an experiment without runs, a benchmark
without a champion); 4 the runs failed (every trial of a sweep or regression, or the run of `vtrlab
train`); 130 interrupted (SIGINT or SIGTERM; a sweep's state is saved and `--resume` continues it).
"""

from __future__ import annotations

import signal
import sys

import typer
from rich.console import Console
from rich.markup import escape

from vtrlab.errors import VtrlabError
from vtrlab.hub.cli import pull_command, search_command
from vtrlab.jobs_cli import jobs_app, submit_command
from vtrlab.model.cli import model_app
from vtrlab.regress.cli import regress_command
from vtrlab.report.cli import compare_command
from vtrlab.reproduce_cli import reproduce_command
from vtrlab.sweep.cli import sweep_command
from vtrlab.tracking.cli import reconcile_command
from vtrlab.train.cli import train_command

app = typer.Typer(
    name="vtrlab",
    help="Parameter-efficient video-text retrieval on a frozen open_clip CLIP, with Ray and MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(model_app, name="model")
app.command("train")(train_command)
app.command("sweep")(sweep_command)
app.command("submit")(submit_command)
app.add_typer(jobs_app, name="jobs")
app.command("compare")(compare_command)
app.command("regress")(regress_command)
app.command("pull")(pull_command)
app.command("search")(search_command)
app.command("reconcile")(reconcile_command)
app.command("reproduce")(reproduce_command)


@app.command()
def ui(
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(5000, help="port"),
) -> None:
    """The MLflow UI on vtrlab's tracking store (MLFLOW_TRACKING_URI, else the local one)."""
    from vtrlab.ui import run_ui

    raise typer.Exit(run_ui(host, port))


try:  # the data layer is optional at import time so `vtrlab model ...` works without its extras
    from vtrlab.data.cli import data_app
except ImportError:  # pragma: no cover
    data_app = None
if data_app is not None:
    app.add_typer(data_app, name="data")


@app.command()
def selfcheck(
    backbone: str = typer.Option("vtr-tiny", help="open_clip model name"),
    frames: int = typer.Option(4, help="frames per clip"),
    batch: int = typer.Option(4, help="clips per batch"),
    steps: int = typer.Option(3, help="training steps per method"),
) -> None:
    """Build every method, print its parameter count and one training step's loss."""
    from vtrlab.selfcheck import run_selfcheck

    run_selfcheck(backbone=backbone, num_frames=frames, batch_size=batch, steps=steps)


@app.command()
def quickstart(
    address: str = typer.Option(None, help="Ray address (default: RAY_ADDRESS, else a local Ray)"),
    size: str = typer.Option("demo", help="synthetic benchmark size: demo (512 test clips), small or medium"),
    fresh: bool = typer.Option(False, help="pretrain and sweep again even if a finished quickstart exists"),
    verbose: bool = typer.Option(False, "--verbose", help="Ray's status tables and worker logs too"),
) -> None:
    """Synthesise data, pretrain the tiny backbone, run the quickstart sweep, register the champion, compare."""
    from vtrlab.quickstart import quickstart as run_quickstart

    run_quickstart(address=address, size=size, fresh=fresh, verbose=verbose)


def _terminate(signum: int, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM (e.g. `vtrlab jobs stop`) ends a command as Ctrl+C does: runs closed


MAX_ERROR_LINE = 900  # characters of the one error line (a value in it is cut long before)


def error_line(message: str, limit: int = MAX_ERROR_LINE) -> str:
    """A (possibly multi-line) error message as one bounded line: later lines that repeat the first one's
    `source: ` prefix lose it, lines are joined with "; "."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()] or ["(no message)"]
    source = lines[0].split(": ", 1)[0] + ": " if ": " in lines[0] else None
    rest = [line[len(source) :] if source and line.startswith(source) else line for line in lines[1:]]
    text = "; ".join([lines[0], *rest])
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _quiet_store_setup() -> None:
    """MLflow announces creating and migrating a local SQL store on stderr: not a line the user must read."""
    import logging

    logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def main() -> None:
    """Console-script entry point: vtrlab's errors and usage errors as one line and their exit code; an
    unexpected error keeps its traceback (exit 1)."""
    from typer._click.exceptions import ClickException  # typer's vendored click: the one it raises

    signal.signal(signal.SIGTERM, _terminate)
    _quiet_store_setup()
    console = Console(stderr=True, soft_wrap=True)

    def error(message: str) -> None:
        console.print(f"[bold red]error:[/] {escape(error_line(message))}", highlight=False)

    try:
        code = app(standalone_mode=False)  # click leaves errors and interrupts to us: their exit codes are ours
        sys.exit(code if isinstance(code, int) else 0)
    except ClickException as err:  # usage errors (an unknown or malformed option): one line, exit 2
        ctx = getattr(err, "ctx", None)
        where = f"vtrlab {' '.join(ctx.command_path.split()[1:])}".strip() if ctx is not None else "vtrlab"
        error(f"{where}: {err.format_message()} (see `{where} --help`)")
        sys.exit(err.exit_code)
    except typer.Exit as err:
        sys.exit(err.exit_code)
    except VtrlabError as err:
        error(str(err))
        sys.exit(err.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        console.print("[bold red]interrupted[/] (runs were ended FAILED; a sweep continues with --resume)")
        sys.exit(130)


if __name__ == "__main__":
    main()
