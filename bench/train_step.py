"""Training-step benchmark: forward + backward + optimizer of every method on one batch, as training runs it.

Each method is built on the same frozen open_clip backbone (random weights: timing does not depend on
them) and timed through `vtrlab.train.step.training_step`, the code the training workers run (bf16 autocast
on CUDA). Zero-shot has no optimizer, so its row is the forward pass only. The script also counts the ViT
visual tower's FLOPs analytically and compares a forward-only `encode_video` with a measured matmul peak
(bf16 8192^3 on CUDA; fp32 2048^3 on CPU, for reference only). Methods, the forward and the matmul are timed
in interleaved rounds, so a busy machine slows all of them alike.

    PYTHONPATH=platform .venv/bin/python bench/train_step.py                      # CPU: vtr-tiny, 12 x 8
    PYTHONPATH=platform .venv/bin/python bench/train_step.py --device cuda --write docs/performance.md

FLOP model (2 FLOPs per multiply-add; N = (H/p)^2 + 1 tokens, d = width, m = MLP width, L = blocks):

    patch embed  2 (N-1) (3 p^2) d
    per block    qkv 2 N d (3d) + out 2 N d^2 + attention (Q K^T and A V) 2 * 2 N^2 d + MLP 2 * 2 N d m
    projection   2 d e (CLS token only)
    per clip     frames * (patch embed + L * block + projection)

A training step costs k forward passes of a tower: k = 3 when its backbone weights train (forward,
activation gradients, weight gradients: full fine-tuning), k = 2 when only modules inside it train (adapters,
LoRA, unfrozen biases: activation gradients flow through every frozen block, weight gradients are
negligible), k = 1 when nothing inside it trains (zero-shot, RAP's head sits after the frozen tower).
(Approximate: the attention matmuls need both input gradients even when frozen, so a frozen block's backward
costs slightly more than its forward; they are ~4% of a ViT-B/16 block's FLOPs.)
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import ctypes
import gc
import os
import platform
import re
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from vtrlab.model.dual_encoder import VideoTextDualEncoder
from vtrlab.model.factory import create_model
from vtrlab.model.methods import list_methods
from vtrlab.model.params import count_parameters
from vtrlab.selfcheck import random_batch
from vtrlab.train.step import autocast_for, make_optimizer, training_step

SECTION = "## Model training step"
SUBSECTIONS = {"cpu": "### CPU run", "cuda": "### GPU run"}
DEFAULTS = {  # device -> (backbone, frames, batch, steps, warmup)
    "cpu": ("vtr-tiny", 12, 8, 60, 5),
    "cuda": ("ViT-B-16", 12, 32, 30, 5),
}
TARGET_MV_OVER_FULL = 1.3  # MV-Adapter clips/s over full fine-tuning at the same batch (H100)
TARGET_PEAK_FRACTION = 0.40  # visual tower forward vs measured bf16 matmul peak (H100)


# ---- analytic FLOPs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TowerGeometry:
    """What the FLOP count needs from a transformer tower (read off the built backbone)."""

    tokens: int  # N (ViT: patches + CLS; text: caption length)
    width: int  # d
    mlp_width: int  # m
    layers: int  # L
    out_dim: int  # e, the projection's output width
    patch_flops: float = 0.0  # patch embedding (visual only)

    def forward_flops(self) -> float:
        """FLOPs of one image (or caption) through the tower, patch embedding to projection."""
        n, d = self.tokens, self.width
        block = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * n * d + 2 * 2 * n * d * self.mlp_width
        return self.patch_flops + self.layers * block + 2 * d * self.out_dim


def visual_geometry(encoder: VideoTextDualEncoder) -> TowerGeometry:
    """The ViT's config (patch size, width, depth, MLP width; tokens from the image size), off the tower."""
    visual = encoder.clip.visual
    patch = visual.conv1.kernel_size[0]
    height, width = encoder.image_size
    patches = (height // patch) * (width // patch)
    blocks = encoder.visual_blocks
    dim = int(visual.conv1.out_channels)
    return TowerGeometry(
        tokens=patches + 1,
        width=dim,
        mlp_width=int(blocks[0].mlp.c_fc.out_features),
        layers=len(blocks),
        out_dim=int(visual.proj.shape[1]),
        patch_flops=2.0 * patches * 3 * patch * patch * dim,
    )


def text_geometry(encoder: VideoTextDualEncoder, length: int) -> TowerGeometry:
    """The text transformer's geometry for captions of `length` tokens."""
    blocks = encoder.text_blocks
    return TowerGeometry(
        tokens=length,
        width=int(blocks[0].ln_1.normalized_shape[0]),
        mlp_width=int(blocks[0].mlp.c_fc.out_features),
        layers=len(blocks),
        out_dim=encoder.embed_dim,
    )


def step_multiplier(encoder: VideoTextDualEncoder, prefix: str, trains: bool) -> int:
    """k of the module docstring for the tower whose blocks' parameter names start with `prefix`."""
    if not trains:
        return 1
    method_names = encoder.method_param_names
    inside = [(n, p) for n, p in encoder.named_parameters() if n.startswith(prefix) and p.requires_grad]
    if any(n not in method_names and p.dim() >= 2 for n, p in inside):
        return 3
    return 2 if inside else 1


def text_prefix(encoder: VideoTextDualEncoder) -> str:
    """Parameter-name prefix of the text blocks (CLIP keeps them at top level, CustomTextCLIP under .text)."""
    tower = "clip.text." if hasattr(encoder.clip, "text") else "clip."
    return tower + "transformer.resblocks."


# ---- timing and memory ------------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call of `fn` (synchronised before and after on GPU)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class PeakMemory:
    """Peak memory of a block of work above what was live when it began: the method's weights, optimizer
    state, gradients and activations when the block builds the model and runs its warm-up steps.

    CUDA: torch.cuda.max_memory_allocated minus memory_allocated at the start. CPU: growth of the process's
    peak RSS (VmHWM, reset through /proc/self/clear_refs after a glibc malloc_trim); where that is not
    available, growth of resource.getrusage's ru_maxrss, a lifetime peak, so later blocks read low.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.peak_bytes = -1
        self.method = "CUDA max_memory_allocated growth"
        if device.type == "cpu":
            self.method = "peak RSS growth (VmHWM reset)" if self._reset_hwm() else "ru_maxrss growth"

    @staticmethod
    def _reset_hwm() -> bool:
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            return False
        return _status_kib("VmHWM") is not None

    def __enter__(self) -> PeakMemory:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so RSS starts from live memory
        if self.method.startswith("peak RSS"):
            self._reset_hwm()
            self.start = (_status_kib("VmRSS") or 0) * 1024
        else:
            self.start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
        elif self.method.startswith("peak RSS"):
            peak = (_status_kib("VmHWM") or 0) * 1024
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak_bytes = peak - self.start


class Matmul:
    """A square matmul burst for the peak: bf16 8192^3 x 10 on CUDA, fp32 2048^3 x 1 on CPU."""

    def __init__(self, device: torch.device):
        cuda = device.type == "cuda"
        self.size, self.repeats = (8192, 10) if cuda else (2048, 1)
        dtype = torch.bfloat16 if cuda else torch.float32
        self.label = f"{'bf16' if cuda else 'fp32 CPU'} {self.size}^3 matmul"
        self.a = torch.randn(self.size, self.size, device=device, dtype=dtype)
        self.b = torch.randn(self.size, self.size, device=device, dtype=dtype)
        self.out = torch.empty_like(self.a)

    @property
    def flops(self) -> float:
        return 2.0 * self.size**3 * self.repeats

    def __call__(self) -> None:
        for _ in range(self.repeats):
            torch.matmul(self.a, self.b, out=self.out)


# ---- the benchmark ----------------------------------------------------------------------------------------
@dataclass
class Row:
    method: str
    trainable: int
    trainable_pct: float
    timed: str  # "fwd+bwd+opt" or "forward only"
    median_s: float
    p90_s: float
    clips_per_s: float
    peak_bytes: int
    k_visual: int
    k_text: int
    gflop_per_clip: float  # model FLOPs per clip of the timed step (visual and text, k x forward)
    tflops: float


@dataclass
class VisualForward:
    gflop_per_clip: float
    median_s: float
    tflops: float
    peak_tflops: float  # median of the timed matmul bursts
    best_peak_tflops: float
    peak_label: str

    @property
    def fraction(self) -> float:
        return self.tflops / self.peak_tflops


@dataclass
class Candidate:
    """One method built and warmed up, with what the table needs besides its timings."""

    method: str
    step: Callable[[], object]
    trainable: int
    trainable_pct: float
    trains: bool
    k_visual: int
    k_text: int
    peak_bytes: int
    encoder: VideoTextDualEncoder


def prepare(
    reference: VideoTextDualEncoder,
    method: str,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    warmup: int,
    device: torch.device,
    memory: PeakMemory,
) -> Candidate:
    """Build `method` on a copy of the backbone, run its warm-up steps; peak memory covers both."""
    frames, mask, tokens = batch
    with memory:
        encoder = create_model(method, clip=copy.deepcopy(reference.clip), backbone_info=reference.backbone)
        encoder = encoder.to(device)
        optimizer = make_optimizer(encoder)

        def step() -> float:
            return training_step(encoder, optimizer, frames, mask, tokens)

        for _ in range(max(1, warmup)):  # the first step also allocates AdamW's state
            step()
        synchronize(device)
    counts = count_parameters(encoder)
    trains = optimizer is not None
    return Candidate(
        method=method,
        step=step,
        trainable=counts.trainable,
        trainable_pct=counts.trainable_pct,
        trains=trains,
        k_visual=step_multiplier(encoder, "clip.visual.transformer.resblocks.", trains),
        k_text=step_multiplier(encoder, text_prefix(encoder), trains),
        peak_bytes=memory.peak_bytes,
        encoder=encoder,
    )


def run_benchmark(
    reference: VideoTextDualEncoder,
    methods: list[str],
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    steps: int,
    warmup: int,
    device: torch.device,
    console: Console,
) -> tuple[list[Row], str, VisualForward]:
    """Build and warm up every method one at a time (measuring its peak memory), then time `steps` rounds
    that each run one training step of every method, one forward-only `encode_video` of the frozen tower
    and one matmul burst, so that load from other processes falls on all of them alike."""
    frames, mask, tokens = batch
    memory = PeakMemory(device)
    candidates = []
    for method in methods:
        candidates.append(prepare(reference, method, batch, warmup, device, memory))
        console.print(f"  built and warmed up {method} ({fmt_bytes(memory.peak_bytes)} peak)")
    zero_shot = [c.encoder for c in candidates if c.method == "zero-shot"]
    frozen = zero_shot[0] if zero_shot else reference.to(device)

    def visual_forward() -> None:
        with torch.no_grad(), autocast_for(device):
            frozen.eval().encode_video(frames, mask)

    matmul = Matmul(device)
    extras: dict[str, Callable[[], object]] = {"visual": visual_forward, "matmul": matmul}
    for fn in extras.values():
        for _ in range(max(1, warmup)):
            fn()
    times: dict[str, list[float]] = {name: [] for name in [*methods, *extras]}
    for round_index in range(steps):
        for candidate in candidates:
            times[candidate.method].append(time_once(candidate.step, device))
        for name, fn in extras.items():
            times[name].append(time_once(fn, device))
        if (round_index + 1) % max(1, steps // 4) == 0:
            console.print(f"  timed round {round_index + 1}/{steps}")

    visual_flops = visual_geometry(reference).forward_flops() * frames.shape[1]
    text_flops = text_geometry(reference, tokens.shape[1]).forward_flops()
    rows = []
    for c in candidates:
        median = statistics.median(times[c.method])
        clips_per_s = frames.shape[0] / median
        flops = c.k_visual * visual_flops + c.k_text * text_flops
        rows.append(
            Row(
                method=c.method,
                trainable=c.trainable,
                trainable_pct=c.trainable_pct,
                timed="fwd+bwd+opt" if c.trains else "forward only",
                median_s=median,
                p90_s=p90(times[c.method]),
                clips_per_s=clips_per_s,
                peak_bytes=c.peak_bytes,
                k_visual=c.k_visual,
                k_text=c.k_text,
                gflop_per_clip=flops / 1e9,
                tflops=flops * clips_per_s / 1e12,
            )
        )
    visual_median = statistics.median(times["visual"])
    matmul_rates = [matmul.flops / t for t in times["matmul"]]
    visual = VisualForward(
        gflop_per_clip=visual_flops / 1e9,
        median_s=visual_median,
        tflops=visual_flops * frames.shape[0] / visual_median / 1e12,
        peak_tflops=statistics.median(matmul_rates) / 1e12,
        best_peak_tflops=max(matmul_rates) / 1e12,
        peak_label=matmul.label,
    )
    return rows, memory.method, visual


# ---- reporting --------------------------------------------------------------------------------------------
def fmt_bytes(value: int) -> str:
    if value < 0:
        return "n/a"
    return f"{value / 2**30:.2f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"


COLUMNS = (
    "method",
    "trainable params",
    "% of CLIP",
    "timed",
    "median ms",
    "p90 ms",
    "clips/s",
    "peak mem",
    "k vis/text",
    "GFLOP/clip",
    "TFLOP/s",
)


def row_cells(row: Row) -> list[str]:
    return [
        row.method,
        f"{row.trainable:,}",
        f"{row.trainable_pct:.2f}",
        row.timed,
        f"{row.median_s * 1e3:.1f}",
        f"{row.p90_s * 1e3:.1f}",
        f"{row.clips_per_s:.1f}",
        fmt_bytes(row.peak_bytes),
        f"{row.k_visual}/{row.k_text}",
        f"{row.gflop_per_clip:.3g}",
        f"{row.tflops:.3g}",
    ]


def machine_info(device: torch.device) -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE)
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (no GPU)"
    return {
        "cpu": cpu,
        "cores": f"{os.cpu_count()} logical cores, torch uses {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "device": name,
    }


def command_line() -> str:
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else "python"
    prefix = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    return prefix + shlex.join([python, *sys.argv])


def ratio(rows: list[Row], top: str, bottom: str) -> float | None:
    by_name = {r.method: r for r in rows}
    if top in by_name and bottom in by_name:
        return by_name[top].clips_per_s / by_name[bottom].clips_per_s
    return None


def markdown_run(
    args: argparse.Namespace,
    device: torch.device,
    rows: list[Row],
    memory_method: str,
    visual: VisualForward | None,
) -> str:
    """The device's subsection: machine, command, table, MV-Adapter/full ratio, visual tower vs peak."""
    info = machine_info(device)
    lines = [
        SUBSECTIONS[device.type],
        "",
        f"- Machine: {info['cpu']}; {info['cores']}; torch {info['torch']}; device: {info['device']}.",
        f"- Configuration: backbone `{args.backbone}` (random weights), {args.batch} clips x {args.frames} "
        f"frames, {'bf16 autocast' if device.type == 'cuda' else 'fp32'}; {args.warmup} warm-up steps per "
        f"method, then median and p90 of {args.steps} timed rounds (each round: one step of every method, "
        "one forward-only encode_video, one matmul burst).",
        f"- Command: `{command_line()}`",
        f"- 1-minute load average before / after the run: {args.load[0]:.2f} / {args.load[1]:.2f} "
        f"(other processes on the machine inflate the times, p90 most).",
        f"- Peak memory: {memory_method}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" if i in (0, 3) else "---:" for i in range(len(COLUMNS))) + "|",
    ]
    lines += ["| " + " | ".join(row_cells(r)) + " |" for r in rows]
    lines.append("")
    mv_full = ratio(rows, "mv-adapter", "full")
    if mv_full is not None:
        verdict = f"target >= {TARGET_MV_OVER_FULL}x on H100"
        if device.type == "cuda":
            verdict += ": " + ("met" if mv_full >= TARGET_MV_OVER_FULL else "NOT met")
        lines.append(f"- MV-Adapter / full fine-tuning clips/s: **{mv_full:.2f}x** ({verdict}).")
    if visual is not None:
        verdict = f"target >= {TARGET_PEAK_FRACTION:.0%} of the bf16 peak on H100"
        if device.type == "cuda":
            verdict += ": " + ("met" if visual.fraction >= TARGET_PEAK_FRACTION else "NOT met")
        lines.append(
            f"- Visual tower, forward-only `encode_video` (frozen, no grad): {visual.gflop_per_clip:.3g} "
            f"GFLOP/clip, median {visual.median_s * 1e3:.1f} ms per batch = {visual.tflops:.3g} TFLOP/s; "
            f"measured {visual.peak_label} peak {visual.peak_tflops:.3g} TFLOP/s (median of the timed "
            f"bursts; best {visual.best_peak_tflops:.3g}); "
            f"**{visual.fraction:.1%} of peak** ({verdict})."
        )
    return "\n".join(lines) + "\n"


GPU_PENDING = (
    f"{SUBSECTIONS['cuda']}\n\n"
    "PENDING: no GPU machine was lent to this task, so there are no GPU figures yet (ViT-B-16, 12 frames, "
    "batch 32, bf16 autocast, H100); none are estimated here. Targets to check on an H100: MV-Adapter >= "
    f"{TARGET_MV_OVER_FULL}x the clips/s of full fine-tuning at the same batch, and the visual tower's "
    f"forward at >= {TARGET_PEAK_FRACTION:.0%} of the measured bf16 matmul peak. To fill this in:\n"
    "`PYTHONPATH=platform .venv/bin/python bench/train_step.py --device cuda --write docs/performance.md`\n"
)

SECTION_INTRO = f"""{SECTION}

Written by `bench/train_step.py`. One training step is `vtrlab.train.step.training_step` (forward of both
towers, symmetric InfoNCE, backward, gradient clipping, AdamW) on one random batch, per method; zero-shot has
no optimizer, so its row is its forward pass only ("forward only"). Methods are timed in interleaved
rounds (one step of each per round), so load from other processes falls on all of them alike; clips/s =
batch / median step time; peak mem is the method's own footprint (weights, optimizer state, gradients,
activations) above what was live before it was built.
`k vis/text` is how many forward passes of each tower a step costs (3: backbone weights train; 2: only
modules inside the tower train, activation gradients still flow through every frozen block; 1: nothing in
the tower trains). GFLOP/clip = k_vis x visual forward + k_text x text forward, counted analytically
(2 FLOPs per multiply-add; per block qkv 6Nd^2, out 2Nd^2, attention 4N^2d, MLP 4Ndm; plus patch embedding
and projection; times frames); TFLOP/s = GFLOP/clip x clips/s. CPU figures are for the tiny backbone and
measure framework overhead more than arithmetic: they do not predict the GPU figures.
"""


def write_section(path: Path, device: torch.device, subsection: str) -> None:
    """Replace (or add) the "## Model training step" section of `path`, keeping other sections and the
    other device's subsection; the GPU subsection reads PENDING until a CUDA run writes it."""
    text = path.read_text() if path.exists() else "# Performance\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}[ \t]*\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    existing = pattern.search(text)
    parts = {"cpu": None, "cuda": None}
    if existing:
        for key, heading in SUBSECTIONS.items():
            sub = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^### |\Z)", re.MULTILINE | re.DOTALL)
            found = sub.search(existing.group(0))
            parts[key] = found.group(0).rstrip() + "\n" if found else None
    parts[device.type] = subsection
    if parts["cuda"] is None:
        parts["cuda"] = GPU_PENDING
    body = [SECTION_INTRO] + [parts[key] for key in ("cpu", "cuda") if parts[key] is not None]
    section = "\n".join(body)
    if existing:
        after = text[existing.end() :]
        text = text[: existing.start()] + section + ("\n" + after if after.strip() else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text.rstrip() + "\n")


# ---- entry point ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda if available")
    parser.add_argument("--backbone", default=None, help="open_clip ViT name (CPU: vtr-tiny, CUDA: ViT-B-16)")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default 12)")
    parser.add_argument("--batch", type=int, default=None, help="clips per step (CPU 8, CUDA 32)")
    parser.add_argument("--steps", type=int, default=None, help="timed rounds (CPU 60, CUDA 30)")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps per method (default 5)")
    parser.add_argument("--methods", nargs="+", default=None, help="default: every registered method")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", type=Path, default=None, help="Markdown file to write the section into")
    args = parser.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    backbone, frames, batch, steps, warmup = DEFAULTS[args.device]
    args.backbone = args.backbone or backbone
    args.frames = args.frames or frames
    args.batch = args.batch or batch
    args.steps = args.steps or steps
    args.warmup = warmup if args.warmup is None else args.warmup
    args.methods = args.methods or list_methods()
    unknown = sorted(set(args.methods) - set(list_methods()))
    if unknown:
        parser.error(f"unknown methods {unknown}; allowed: {', '.join(list_methods())}")
    if args.steps < 2:
        parser.error("--steps must be at least 2 (median and p90)")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    if args.threads:
        torch.set_num_threads(args.threads)
    console = Console(width=None if sys.stdout.isatty() else 170)
    load_before = os.getloadavg()[0]
    torch.manual_seed(args.seed)
    reference = create_model("zero-shot", args.backbone)
    frames, mask, tokens = (t.to(device) for t in random_batch(reference, args.batch, args.frames, args.seed))
    console.print(f"[bold]{args.backbone}[/]: {args.batch} clips x {args.frames} frames on {device}")
    rows, memory_method, visual = run_benchmark(
        reference, args.methods, (frames, mask, tokens), args.steps, args.warmup, device, console
    )

    info = machine_info(device)
    args.load = (load_before, os.getloadavg()[0])
    title = f"Training step: {args.backbone}, {args.batch} clips x {args.frames} frames, {info['device']}"
    table = Table(title=title, caption=f"peak mem: {memory_method}")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("method", "timed") else "right")
    for row in rows:
        table.add_row(*row_cells(row))
    console.print(table)
    mv_full = ratio(rows, "mv-adapter", "full")
    if mv_full is not None:
        target = f"target >= {TARGET_MV_OVER_FULL}x, H100"
        console.print(f"MV-Adapter / full clips/s: [bold]{mv_full:.2f}x[/] ({target})")
    console.print(
        f"visual tower forward: {visual.gflop_per_clip:.3g} GFLOP/clip, {visual.tflops:.3g} TFLOP/s = "
        f"[bold]{visual.fraction:.1%}[/] of the {visual.peak_label} peak {visual.peak_tflops:.3g} TFLOP/s "
        f"(median burst; best {visual.best_peak_tflops:.3g}) "
        f"(target >= {TARGET_PEAK_FRACTION:.0%} of the bf16 peak, H100)"
    )
    if args.write is not None:
        write_section(args.write, device, markdown_run(args, device, rows, memory_method, visual))
        console.print(f"wrote {SECTION!r} to {args.write}")


if __name__ == "__main__":
    main()
