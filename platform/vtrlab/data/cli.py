"""``vtrlab data ...``: build, inspect and synth (a typer sub-app mounted by ``vtrlab.cli``)."""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

data_app = typer.Typer(
    help="Benchmarks as WebDataset shards in object storage: build from annotations + videos, inspect, "
    "or write the synthetic temporal benchmark.",
    no_args_is_help=True,
)


def _console():
    from rich.console import Console

    return Console(stderr=True)


@data_app.command()
def build(
    benchmark: Annotated[str, typer.Argument(help="msrvtt | msvd | lsmdc | didemo | activitynet, or a card file")],
    annotations: Annotated[str, typer.Option("--annotations", help="folder with the annotation files")],
    videos: Annotated[str, typer.Option("--videos", help="folder with the video files (searched recursively)")],
    out: Annotated[str, typer.Option("--out", help="destination: local path, file:///path or s3://bucket/prefix")],
    splits: Annotated[list[str] | None, typer.Option("--splits", help="splits to build (repeat; default: all)")] = None,
    executor: Annotated[str, typer.Option(help="ray (default; RAY_ADDRESS or a local Ray) or local")] = "ray",
    num_cpus: Annotated[int | None, typer.Option(help="CPUs of a local Ray (default: all)")] = None,
    num_frames: Annotated[
        int | None, typer.Option(help="frames evaluation sees, CLIP4Clip's (default: the card's num_frames)")
    ] = None,
    stored_frames: Annotated[
        int | None, typer.Option(help="frames kept per clip; more than num_frames keeps extras for training jitter")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="override the card's image_size")] = None,
    frame_format: Annotated[str | None, typer.Option(help="override the card's frame_format: jpg|png|npy")] = None,
    shard_samples: Annotated[int | None, typer.Option(help="override the card's videos per shard")] = None,
    strict_ids: Annotated[
        bool,
        typer.Option(
            "--strict-ids",
            help="stop at an id that an id list names but the caption file lacks (default: skip it, as "
            "CLIP4Clip does, and list it in the manifest)",
        ),
    ] = False,
    allow_links: Annotated[
        bool,
        typer.Option("--allow-links", help="read video files that link out of the --videos folder (default: refuse)"),
    ] = False,
) -> None:
    """Convert a benchmark's annotation files and videos into shards + manifest at OUT (resumable)."""
    from rich.console import Console

    from vtrlab.data.build import build as run_build

    con = _console()
    out_con = Console()  # progress on stdout: stderr carries warnings and the error line
    split_list = [x for s in (splits or []) for x in s.split(",") if x] or None

    def progress(st: dict) -> None:
        word = "resumed" if st.get("resumed") else "wrote"
        out_con.print(
            f"{word} {st['split']}/shard-{st['index']:06d}: {st['samples']} videos, "
            f"{st['captions']} captions, {len(st['skipped'])} skipped"
        )

    man = run_build(
        benchmark,
        annotations,
        videos,
        out,
        split_list,
        executor=executor,
        num_cpus=num_cpus,
        progress=progress,
        strict_ids=strict_ids,
        allow_links=allow_links,
        num_frames=num_frames,
        stored_frames=stored_frames,
        image_size=image_size,
        frame_format=frame_format,
        shard_samples=shard_samples,
    )
    _print_summary(man_summary_from(out))
    con.print(f"manifest: {out.rstrip('/')}/manifest.json  version {man['version'][:16]}")


def man_summary_from(url: str) -> dict:
    from vtrlab.data.summary import summary

    return summary(url)


def _print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{s['name']} @ {s['url']}  (version {s['version'][:12]})")
    for col in (
        "split",
        "protocol",
        "videos",
        "captions",
        "skipped",
        "shards",
        "MB",
        "KB/clip",
        "expected v/c",
    ):
        t.add_column(col, justify="left" if col in ("split", "protocol") else "right")
    for name, sp in s["splits"].items():
        exp = sp.get("expected") or {}
        t.add_row(
            name,
            sp["protocol"],
            str(sp["videos"]),
            str(sp["captions"]),
            str(sp["skipped"]),
            str(sp["shards"]),
            f"{sp['bytes'] / 1e6:.1f}",
            f"{sp['bytes_per_clip'] / 1e3:.1f}",
            f"{exp.get('videos', '?')}/{exp.get('captions', '?')}",
        )
    con = Console()
    if not con.is_terminal:
        con = Console(width=max(con.width, 132))  # logs and pipes: do not truncate the columns
    con.print(t)
    for name, sp in s["splits"].items():
        for sk in sp["skipped_videos"][:10]:
            Console(stderr=True).print(f"[yellow]skipped[/] {name}/{sk['video_id']}: {sk['reason']}")
        if sp["skipped"] > 10:
            Console(stderr=True).print(f"... and {sp['skipped'] - 10} more skipped in {name} (see --json)")


@data_app.command()
def inspect(
    url: Annotated[str, typer.Argument(help="dataset URL (where manifest.json is)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on stdout")] = False,
    sheet: Annotated[
        str | None,
        typer.Option(
            "--sheet",
            help="write a contact sheet PNG here (default without --json: ./<name>-contact-sheet.png)",
        ),
    ] = None,
    split: Annotated[str | None, typer.Option(help="only this split on the contact sheet")] = None,
    samples: Annotated[int, typer.Option(help="samples per split on the contact sheet")] = 3,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="read every shard and check its sha256 and sample count against the manifest"),
    ] = False,
) -> None:
    """Summarise a built dataset (per split: samples, videos, captions, skipped) and draw a contact sheet
    (from shards whose sha256 and sample count match the manifest)."""
    from vtrlab.data.shards import manifest_split
    from vtrlab.data.summary import summary, verify_shards, write_contact_sheet
    from vtrlab.errors import ConfigError

    if samples < 1:
        raise ConfigError(f"--samples {samples}: expected a number of samples >= 1")
    s = summary(url)
    if split is not None:
        manifest_split({"splits": s["splits"], "name": s["name"]}, split, s["url"])
    if verify:
        n = verify_shards(url, split)
        _console().print(f"verified {n} shard(s): sha256 and sample counts match the manifest")
    if as_json:
        typer.echo(json.dumps(s, indent=1, sort_keys=True))
    else:
        _print_summary(s)
    target = sheet or (None if as_json else os.path.join(os.getcwd(), f"{s['name']}-contact-sheet.png"))
    if target:
        write_contact_sheet(url, target, split=split, samples_per_split=samples)
        _console().print(f"contact sheet: {target}")


@data_app.command()
def synth(
    out: Annotated[str, typer.Option("--out", help="destination: local path, file:///path or s3://bucket/prefix")],
    size: Annotated[str, typer.Option(help="small (tests, seconds) or medium (quickstart demo)")] = "small",
    seed: Annotated[int, typer.Option(help="random seed (same seed, same bytes)")] = 0,
) -> None:
    """Write the synthetic temporal benchmark (ordered-event captions, reverse-order distractors) and the
    static image-caption set (split `images`)."""
    from vtrlab.data.synth import synth as run_synth

    run_synth(out, size=size, seed=seed)
    _print_summary(man_summary_from(out))
