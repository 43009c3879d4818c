"""`vtrlab pull` and `vtrlab search`: a registered adapter to a directory, and retrieval with it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vtrlab.cli_common import print_json
from vtrlab.errors import ConfigError

REFERENCE_HELP = "MODEL@ALIAS, MODEL/VERSION or MODEL (= MODEL@champion), e.g. vtrlab-synthetic-vtr-tiny@champion"
WEIGHTS_HELP = "backbone weights file or pretrained tag (default: the weights the adapter records)"


def pull_command(
    reference: Annotated[str, typer.Argument(metavar="MODEL[@ALIAS|/VERSION]", help=REFERENCE_HELP)],
    out: Annotated[Path, typer.Option("--out", help="directory to write (an earlier pull there is replaced)")],
    weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP)] = None,
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Copy a registered adapter version to DIR, verified (checksum, backbone fingerprint); registry read-only."""
    from vtrlab.hub.pull import pull
    from vtrlab.hub.reference import parse_reference

    ref = parse_reference(reference)
    pulled = pull(ref, out, weights=weights)
    if json_output:
        print_json(pulled.to_dict())
        return
    console = Console(highlight=False, soft_wrap=True)
    aliases = f" ({', '.join(pulled.aliases)})" if pulled.aliases else ""
    metrics = pulled.metrics
    shown = "  ".join(f"{k} {metrics[k]:.2f}" for k in ("t2v_R1", "v2t_R1", "rsum") if k in metrics) or "-"
    sweep = f", sweep {pulled.tags['sweep']}" if "sweep" in pulled.tags else ""
    weights_arg = f", weights={str(weights)!r}" if weights is not None else ""
    console.print(f"pulled [bold]{pulled.model}[/] version {pulled.version}{aliases} into {escape(str(pulled.path))}")
    console.print(f"  run        {pulled.run_id} ({pulled.method}{sweep})")
    console.print(f"  metrics    {shown}")
    console.print(f"  checksum   {pulled.weights_sha256} verified")
    console.print(
        f"  backbone   {pulled.backbone['name']} fingerprint {pulled.backbone['fingerprint']} verified "
        f"(weights {escape(str(pulled.verified_weights))})"
    )
    console.print("load it in Python:")
    console.print("  import vtrlab")
    console.print(f"  encoder = vtrlab.load({str(ref)!r}{weights_arg})  # through the registry, cached", markup=False)
    console.print("  from vtrlab.model.artifacts import load_adapter")
    console.print(f"  encoder = load_adapter({str(pulled.path)!r}{weights_arg})  # this copy", markup=False)


def search_command(
    model: Annotated[str, typer.Option("--model", help=REFERENCE_HELP)],
    shards: Annotated[str, typer.Option(help="the benchmark's shards: local path, file:// or s3:// URL")],
    split: Annotated[str | None, typer.Option(help="split to search (default: the adapter's evaluation split)")] = None,
    query: Annotated[str | None, typer.Option(help="text to find videos for")] = None,
    video: Annotated[str | None, typer.Option(help="video id to find captions for")] = None,
    k: Annotated[int, typer.Option(min=1, help="results to show")] = 5,
    frames: Annotated[int | None, typer.Option(min=1, help="frames per clip (default: the adapter's)")] = None,
    words: Annotated[int | None, typer.Option(min=1, help="words per caption (default: the adapter's)")] = None,
    weights: Annotated[str | None, typer.Option(help=WEIGHTS_HELP)] = None,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda")] = "cpu",
    json_output: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Rank the videos of a split for --query TEXT, or its captions for --video ID, with a registered adapter."""
    from vtrlab.hub.load import load_pulled
    from vtrlab.hub.reference import parse_reference
    from vtrlab.hub.search import RetrievalIndex, retrieval_settings

    if (query is None) == (video is None):
        raise ConfigError("vtrlab search: pass exactly one of --query TEXT (find videos) or --video ID (find captions)")
    if query is not None and not query.strip():
        raise ConfigError("vtrlab search: --query is empty; pass words to search for, e.g. --query 'a red square'")
    ref = parse_reference(model)
    encoder, pulled = load_pulled(ref, weights, device=device)
    settings = retrieval_settings(pulled, split=split, num_frames=frames, max_words=words)
    index = RetrievalIndex.build(encoder, shards, settings=settings, device=device, texts=video is not None)
    hits = index.text_to_videos(query, k) if query is not None else index.video_to_texts(video, k)
    if json_output:
        print_json(
            {
                "model": pulled.model,
                "version": pulled.version,
                "aliases": pulled.aliases,
                "method": pulled.method,
                "shards": shards,
                "split": settings.split,
                **({"query": query} if query is not None else {"video": video}),
                "num_frames": settings.num_frames,
                "max_words": settings.max_words,
                "results": [asdict(hit) for hit in hits],
            }
        )
        return
    asked = f"videos for {query!r}" if query is not None else f"captions for video {video!r}"
    table = Table(title=f"{pulled.model} v{pulled.version} ({pulled.method}): {asked} in {settings.split} of {shards}")
    for column in ("rank", "score", "video id", "caption" if video else "caption(s)"):
        table.add_column(column, justify="right" if column in ("rank", "score") else "left")
    for hit in hits:
        if query is not None:
            table.add_row(str(hit.rank), f"{hit.score:.4f}", escape(hit.video_id), escape("\n".join(hit.captions)))
        else:
            mark = " (own)" if hit.own else ""
            style = "bold green" if hit.own else None
            table.add_row(
                str(hit.rank), f"{hit.score:.4f}", escape(hit.video_id + mark), escape(hit.caption), style=style
            )
    Console(width=max(Console().width, 120)).print(table)
