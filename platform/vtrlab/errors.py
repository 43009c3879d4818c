"""The exceptions vtrlab raises for bad input: each message names the file, key or URL at fault."""

from __future__ import annotations


class VtrlabError(Exception):
    """Base class of every error vtrlab raises on purpose (the CLI prints these without a traceback and exits
    with `exit_code`: 2 for bad input, 3 for something named that does not exist, 4 when the runs of a
    sweep, regression or training all failed, 130 when interrupted)."""

    exit_code = 2


class ConfigError(VtrlabError, ValueError):
    """An unknown name, an unknown key or an out-of-range value in a spec, a knob or a CLI option."""


class InputError(VtrlabError, ValueError):
    """A tensor or file whose shape, dtype or content is not what the called function expects."""


class ArtifactError(VtrlabError):
    """An adapter artifact that is missing, corrupt, truncated or made for another backbone."""


class DataError(VtrlabError):
    """An annotation file, video or shard that cannot be parsed or read."""


class StorageError(VtrlabError):
    """An object-store operation (s3:// or file://) that failed; the message names the bucket and key."""


class NotFoundError(VtrlabError, LookupError):
    """A named model, version, alias, experiment or champion that does not exist (exit code 3)."""

    exit_code = 3


class RunsFailedError(VtrlabError):
    """Every trial of a sweep or regression failed, or the run of `vtrlab train` did (or, with `--strict`,
    any trial did): the message counts them and gives the first error of each kind (exit code 4)."""

    exit_code = 4


class Interrupted(VtrlabError):
    """A sweep, regression or training run stopped by SIGINT or SIGTERM: its state is saved, its runs are
    ended FAILED ("interrupted"), and `--resume` continues a sweep (exit code 130)."""

    exit_code = 130
