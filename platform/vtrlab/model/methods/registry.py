"""The method registry: every adapter method is a named entry with a typed, validated knob model.

Like timm's model registry, a method registers itself with a decorator; `create_model` builds the frozen
backbone, wraps it in the dual encoder and lets the method inject its modules (the peft pattern). A method
may also register the knob values its authors used per benchmark (`benchmark_knobs`): a run on that
benchmark takes them for every knob it does not set.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from vtrlab.config import shown
from vtrlab.errors import ConfigError

if TYPE_CHECKING:  # importing the encoder at run time would create an import cycle
    from vtrlab.model.dual_encoder import VideoTextDualEncoder


class Knobs(BaseModel):
    """Base of every method's knob model: unknown knobs are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=True)


ApplyFn = Callable[["VideoTextDualEncoder", Knobs], None]


@dataclass(frozen=True)
class MethodEntry:
    """A registered method: its name, knob model, what it does to an encoder, and a one-line summary."""

    name: str
    knobs: type[Knobs]
    apply: ApplyFn
    summary: str
    benchmark_knobs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


_METHODS: dict[str, MethodEntry] = {}


def register_method(
    name: str,
    knobs: type[Knobs],
    summary: str,
    benchmark_knobs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Callable[[ApplyFn], ApplyFn]:
    """Decorator registering `apply(encoder, knobs)` as method `name`; `benchmark_knobs` maps a benchmark
    name to the knob values the method's authors used on it (validated here, at import)."""
    settings = {bench: dict(values) for bench, values in (benchmark_knobs or {}).items()}
    for values in settings.values():
        knobs(**values)  # a typo in a registered setting fails at import, not in a user's run

    def decorator(apply: ApplyFn) -> ApplyFn:
        if name in _METHODS:
            raise RuntimeError(f"method {name!r} is registered twice")
        _METHODS[name] = MethodEntry(name=name, knobs=knobs, apply=apply, summary=summary, benchmark_knobs=settings)
        return apply

    return decorator


def list_methods() -> list[str]:
    """Names of every registered method, in registration order."""
    return list(_METHODS)


def get_method(name: str) -> MethodEntry:
    """The registry entry for `name`; an unknown name is a ConfigError listing the allowed ones."""
    try:
        return _METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; allowed: {', '.join(_METHODS)}") from None


def knob_defaults(name: str) -> dict[str, Any]:
    """Every knob of method `name` with its default value."""
    return get_method(name).knobs().model_dump()


def benchmark_knobs(name: str, benchmark: str | None) -> dict[str, Any]:
    """The knob values method `name`'s authors used on `benchmark` (empty when they published none)."""
    if benchmark is None:
        return {}
    return copy.deepcopy(dict(get_method(name).benchmark_knobs.get(benchmark, {})))


_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="), ("min_length", "len>="))


def _type_name(annotation: Any) -> str:
    args = get_args(annotation)
    if get_origin(annotation) is Literal:
        return "|".join(repr(a) for a in args)
    if args:
        inner = ", ".join(_type_name(a) for a in args)
        origin = get_origin(annotation)
        return f"{getattr(origin, '__name__', 'union')}[{inner}]" if origin is list else inner.replace(", ", " | ")
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def describe_knob(knobs: type[Knobs], key: str) -> str:
    """`key: type = default (bounds)`: what `vtrlab model list` and knob errors print for one knob."""
    field = knobs.model_fields[key]
    bounds = [
        f"{symbol}{getattr(meta, attr)}"
        for meta in field.metadata
        for attr, symbol in _BOUNDS
        if getattr(meta, attr, None) is not None
    ]
    text = f"{key}: {_type_name(field.annotation)} = {field.default!r}"
    return f"{text} ({', '.join(bounds)})" if bounds else text


def parse_knobs(name: str, values: Mapping[str, Any] | None = None, source: str = "knobs") -> Knobs:
    """Validate `values` into method `name`'s knob model; errors name the knob, the value and what is allowed.

    `source` names where the values came from (a file, `--set`), for the error message.
    """
    entry = get_method(name)
    values = dict(values or {})
    unknown = sorted(set(values) - set(entry.knobs.model_fields))
    if unknown:
        allowed = ", ".join(entry.knobs.model_fields) or "none"
        raise ConfigError(f"{source}: unknown knob(s) {shown(unknown)} for method {name!r}; allowed: {allowed}")
    try:
        return entry.knobs(**values)
    except ValidationError as err:
        problems = []
        for item in err.errors():
            key = ".".join(str(part) for part in item["loc"]) or "knobs"
            detail = describe_knob(entry.knobs, key) if key in entry.knobs.model_fields else ""
            problems.append(f"{key}={shown(item.get('input'))}: {item['msg']}" + (f" [{detail}]" if detail else ""))
        raise ConfigError(f"{source}: invalid knob(s) for method {name!r}: " + "; ".join(problems)) from None
