"""`vtrlab train`: one training run on Ray Train, tracked in MLflow.

Its options are derived from `TrainSpec` (one `--field-name` per training field, with the field's type,
description and default), so a field added to the spec is an option without being restated here.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from vtrlab.cli_common import parse_assignments, print_json
from vtrlab.config import TrainSpec, shown
from vtrlab.errors import ConfigError

OPTION_TYPES = (int, float, str, bool)


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    table = Table(title=title)
    table.add_column("direction")
    for key in ("R1", "R5", "R10", "MdR", "MnR"):
        table.add_column(key, justify="right")
    for direction in ("t2v", "v2t"):
        table.add_row(
            direction,
            *(f"{metrics.get(f'{direction}_{k}', float('nan')):.1f}" for k in ("R1", "R5", "R10", "MdR", "MnR")),
        )
    return table


def option_name(field: str) -> str:
    """The option of a TrainSpec field (`--set` for the knobs)."""
    return "--set" if field == "knobs" else f"--{field.replace('_', '-')}"


def option_errors(err: ValidationError) -> str:
    """A TrainSpec validation error in the options' words: `vtrlab train: --epochs: ... (got -1)`."""
    fields = re.compile(r"\b(" + "|".join(sorted(TrainSpec.model_fields, key=len, reverse=True)) + r")\b")
    problems = []
    for item in err.errors():
        where = option_name(str(item["loc"][0])) if item["loc"] else None
        message = item["msg"].removeprefix("Value error, ")
        if where is None:  # a rule across fields: name the options in the message
            message = fields.sub(lambda m: option_name(m.group(1)), message)
        got = f" (got {shown(item['input'])})" if where and item["type"] not in ("missing", "value_error") else ""
        problems.append(f"{where + ': ' if where else ''}{message}{got}")
    return "vtrlab train: " + "; ".join(problems)


def _option_type(annotation: Any) -> type:
    """The scalar type typer parses for a TrainSpec field (pydantic validates the value afterwards)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _option_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _option_type(inner[0]) if len(inner) == 1 else str
    if origin is typing.Literal:
        return str
    return annotation if annotation in OPTION_TYPES else str


def _field_options() -> list[inspect.Parameter]:
    parameters = []
    for name, info in TrainSpec.model_fields.items():
        if name == "knobs":
            continue
        required = name in ("benchmark", "method")
        default = "" if required or info.is_required() else f" (default: {info.default})"
        if name == "data":
            default = " (default: the card's shards, else $VTRLAB_HOME/data/BENCHMARK)"
        option = typer.Option(f"--{name.replace('_', '-')}", help=f"{info.description or name}{default}")
        kind = _option_type(info.annotation)
        annotation = Annotated[kind, option] if required else Annotated[kind | None, option]
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=annotation,
                default=inspect.Parameter.empty if required else None,
            )
        )
    return parameters


def _command_options() -> list[inspect.Parameter]:
    extra: dict[str, Any] = {
        "set_": (Annotated[list[str] | None, typer.Option("--set", help="knob=value, repeatable")], None),
        "address": (Annotated[str | None, typer.Option(help="Ray address (default: RAY_ADDRESS, else local)")], None),
        "experiment": (Annotated[str, typer.Option(help="MLflow experiment")], "vtrlab-train"),
        "storage": (Annotated[str | None, typer.Option(help="checkpoint storage, e.g. s3://bucket/ckpt")], None),
        "json_output": (Annotated[bool, typer.Option("--json", help="machine-readable")], False),
    }
    return [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
        for name, (annotation, default) in extra.items()
    ]


def train_command(**options: Any) -> None:
    """Train METHOD on BENCHMARK with Ray Train; every epoch is evaluated, checkpointed and logged to MLflow.

    Exit codes: 0 finished, 2 bad input, 4 the run failed, 130 interrupted."""
    from vtrlab.model.methods import list_methods, parse_knobs
    from vtrlab.paths import default_data_url
    from vtrlab.train.driver import train

    fields = {name: options[name] for name in TrainSpec.model_fields if options.get(name) is not None}
    if fields["method"] not in list_methods():
        raise ConfigError(
            f"vtrlab train --method: unknown method {shown(fields['method'])}; allowed: {', '.join(list_methods())}"
        )
    fields["knobs"] = parse_knobs(fields["method"], parse_assignments(options["set_"]), source="vtrlab train --set")
    if "data" not in fields:
        try:
            fields["data"] = default_data_url(fields["benchmark"])
        except ConfigError as err:
            raise ConfigError(f"vtrlab train --benchmark: {err}") from None
    try:
        spec = TrainSpec.model_validate(fields)
    except ValidationError as err:
        raise ConfigError(option_errors(err)) from None
    outcome = train(spec, experiment=options["experiment"], address=options["address"], storage=options["storage"])
    if options["json_output"]:
        print_json(outcome)
        return
    Console().print(
        metrics_table(f"{spec.method} on {spec.benchmark} (MLflow run {outcome['run_id']})", outcome["metrics"])
    )


train_command.__signature__ = inspect.Signature(_field_options() + _command_options())  # type: ignore[attr-defined]
