"""Neural matting networks at their official inference sizes: time, memory, FLOPs, and cheap wins.

One row per network and input size. Every row times these forwards of the same input,
interleaved (:mod:`matting.bench.rounds`: a shuffled order each round, a pause before each run), and
reports their medians:

* ``no_grad``: ``model.eval()`` under ``torch.no_grad()``, contiguous NCHW (the baseline);
* ``1 thread``: the baseline with ``torch.set_num_threads(1)`` instead of the default (CPU);
* ``inference_mode``: the same under ``torch.inference_mode()``;
* ``+channels_last``: inference_mode, model and input in ``torch.channels_last``;
* ``+BN fold``: inference_mode, BatchNorms folded into their convolutions
  (:func:`matting.models.fuse.fold_batchnorm`), NCHW;
* ``+both``: inference_mode, folded and channels_last;
* for U²-NetP also onnxruntime on the official ``u2netp.onnx`` (spinning threads off);
* ``fast``: :func:`matting.models.accelerate` with its default backend for the architecture (what
  the adapters run), against ``no_grad`` = the reference forward (the official arithmetic).

A second table lists per network the reference ms, the fast ms, their ratio (median over rounds of
fast / reference time in the same round), the backend chosen and the largest |Δ| of any float output,
with the geometric mean of the ratios. Then (unless ``--skip-end-to-end``) U²-NetP end to end
(``matting.run("u2netp", 512² photo)``, all pre/post-processing) against onnxruntime's bare forward of
the official ``u2netp.onnx`` at 320² (default session options, and ours), and the first U²-NetP run in
a fresh process (a subprocess: import, load, convert or read the cache, first forward), reference and
fast.

Weights are recipe-like uniform random ones (timing does not depend on their values),
except U²-NetP, which gets the real weights converted from ``weights/u2netp.onnx``.
GFLOPs are ``torch.utils.flop_counter.FlopCounterMode``'s count (2 x multiply-adds of
convolutions and matrix products) of one forward. Peak memory is the resident-set
growth during one baseline forward (after handing freed heap back to the OS), or on
CUDA the growth of ``torch.cuda.max_memory_allocated``.

With a CUDA device the same rows run again on it (synchronised, TF32 off) in a second table.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .. import models, weights
from ..errors import MattingError
from ..measure import PeakMemory
from ..models.fuse import fold_batchnorm, to_channels_last
from ..models.random_init import recipe_like_weights_
from ._model_tables import LEGEND, print_fast_table, print_row, print_table_header
from .rounds import time_rounds

UHD_PIXELS = 3840 * 2160


# --------------------------------------------------------------------------- what is measured

@dataclass(frozen=True)
class Config:
    family: str              # what --models selects: the checkpoint id
    label: str
    arch: str
    kwargs: dict
    size: tuple[int, int]    # width, height
    input: models.InputConfig
    checkpoint: str | None = None   # a manifest id whose weights are used when present

    @property
    def is_4k(self) -> bool:
        return self.size[0] * self.size[1] >= UHD_PIXELS

    @property
    def input_text(self) -> str:
        return f"{self.size[0]}×{self.size[1]} {'+'.join(_channel_groups(self.input))}"


def _channel_groups(config: models.InputConfig) -> list[str]:
    names, start = [], 0
    for count in config.split or (len(config.channels),):
        group = config.channels[start:start + count]
        names.append("rgb" if group == ("R", "G", "B") else "bgr" if all("background" in c for c in group)
                     else "".join(c if len(c) == 1 else f"+{c}" for c in group).lower())
        start += count
    return names


def configs_from_registry() -> list[Config]:
    """One row per (checkpoint of the manifest, example size of its architecture): every torch
    architecture that declares its inputs, with the constructor arguments of each checkpoint variant
    (checkpoints that differ only in their weights, e.g. MODNet's two, share a row)."""
    configs, seen = [], set()
    for item in weights.manifest().values():
        try:
            architecture = models.get_architecture(item.arch)
        except MattingError:
            continue  # a manifest entry for a network this installation does not have
        key = (item.arch, tuple(sorted(item.model_kwargs.items())))
        if not architecture.is_torch or architecture.input_config is None or key in seen:
            continue
        seen.add(key)
        variant = "_".join(str(v) for v in item.model_kwargs.values())
        for example in architecture.input_config.timing_examples():
            height, width = example.size
            label = " ".join(part for part in (item.arch, variant, example.label) if part)
            configs.append(Config(item.id, label, item.arch, {**item.model_kwargs, **example.kwargs},
                                  (width, height), architecture.input_config, item.id))
    return configs


@dataclass
class Variant:
    name: str
    run: Callable[[], object]    # one forward, returns the outputs
    times: list[float] = field(default_factory=list)

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.times)

    def speedup_over(self, reference: "Variant") -> float:
        """Median over rounds of reference time / own time, both from the same round."""
        return statistics.median(ref / own for ref, own in zip(reference.times, self.times))

    @property
    def spread(self) -> float:
        """Interquartile range over the median."""
        if len(self.times) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times, n=4, method="inclusive")
        return (q3 - q1) / statistics.median(self.times)


MIN_ROUNDS, MAX_ROUNDS = 5, 15  # timed rounds per row when --repeats is not given



@dataclass
class Row:
    config: Config
    params: int
    gflops: float
    peak_mb: float
    repeats: int
    times_ms: dict[str, float]
    speedups: dict[str, float]   # per-round no_grad time / column time, median over rounds
    spreads: list[float]         # interquartile range / median of each column's times
    max_difference: float
    bn_folded: str
    notes: list[str]
    backend: str = ""
    fast_ratio: float = float("nan")       # median over rounds of fast time / reference time
    fast_difference: float = float("nan")  # max |fast − reference| over float outputs


# --------------------------------------------------------------------------- models and inputs

def build_model(config: Config) -> tuple[nn.Module, str]:
    """The eval-mode network and a note on its weights."""
    if config.checkpoint and weights.usable(config.checkpoint):
        return models.create(config.arch, checkpoint=config.checkpoint, **config.kwargs), \
            f"real weights ({config.checkpoint})"
    model = recipe_like_weights_(models.create(config.arch, **config.kwargs))
    if config.arch == "bgmv2_refine":
        # Random weights tend to predict zero error everywhere, and zero-error positions are never
        # refined; shift the error channel (decoder output 4) up so that every position qualifies
        # and the refiner does the official sample_pixels / 16 patches, as on real footage.
        with torch.no_grad():
            model.decoder.conv4.bias[4] += 1.0
    return model.eval(), "random weights"


def make_inputs(config: Config, device: torch.device) -> tuple:
    """Example arguments of the network's forward, from its declared input conventions."""
    width, height = config.size
    spec = config.input
    generator = torch.Generator().manual_seed(1)
    if spec.example_inputs is not None:  # the architecture builds its own arguments
        return tuple(x.to(device) if isinstance(x, torch.Tensor) else x
                     for x in spec.example_inputs(height, width, generator))
    low, high = spec.value_range
    tensors, start = [], 0
    for count in spec.split or (len(spec.channels),):
        planes, colour = [], []
        for name in spec.channels[start:start + count]:
            if name == "trimap":
                planes.append(torch.randint(0, 3, (1, 1, height, width), generator=generator).float() * 0.5)
                continue
            # an 8-bit-like colour channel, scaled to the network's range
            colour.append(torch.randint(0, 256, (1, 1, height, width), generator=generator).float() / 255)
            if len(colour) == 3:
                rgb = low + (high - low) * torch.cat(colour, 1)
                if spec.mean is not None:
                    rgb = (rgb - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
                planes.append(rgb)
                colour = []
        tensors.append(torch.cat(planes, 1).to(device))
        start += count
    return (*tensors, *spec.extra_args)


def output_tensors(outputs) -> list[torch.Tensor]:
    """The float tensors of a (nested) output, numpy arrays included (onnxruntime)."""
    if isinstance(outputs, np.ndarray):
        return [torch.from_numpy(outputs)]
    if isinstance(outputs, torch.Tensor):
        return [outputs.detach().float().cpu()] if outputs.is_floating_point() else []
    if isinstance(outputs, dict):  # SIM's forward returns {"alpha": …}
        outputs = list(outputs.values())
    if isinstance(outputs, (tuple, list)):
        return [tensor for item in outputs for tensor in output_tensors(item)]
    return []


def max_difference(reference, outputs) -> float:
    pairs = list(zip(output_tensors(reference), output_tensors(outputs)))
    return max((float((a - b).abs().max()) for a, b in pairs), default=0.0)


def count_batch_norms(model: nn.Module) -> int:
    return sum(isinstance(module, nn.modules.batchnorm._BatchNorm) for module in model.modules())


# --------------------------------------------------------------------------- measuring

def release_freed_memory() -> None:
    """Collect garbage and return freed heap pages to the OS, so RSS growth reflects the next forward."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> tuple[float, object]:
    synchronise(device)
    start = time.perf_counter()
    outputs = run()
    synchronise(device)
    return time.perf_counter() - start, outputs


def peak_memory_mb(run: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        synchronise(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        run()
        synchronise(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    release_freed_memory()
    with PeakMemory() as memory:
        run()
    return memory.peak_bytes / 2**20


def onnxruntime_session(path, device: torch.device):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    # Idle onnxruntime workers otherwise spin and starve PyTorch's threads in between.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            return None
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(str(path), options, providers=providers)


def with_grad_mode(grad_mode, model, inputs):
    def run():
        with grad_mode():
            return model(*inputs)
    return run


def with_threads(threads: int, run: Callable[[], object]) -> Callable[[], object]:
    def run_with_threads():
        default = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return run()
        finally:
            torch.set_num_threads(default)
    return run_with_threads


def make_variants(model: nn.Module, inputs: tuple, folded: nn.Module | None,
                  device: torch.device) -> list[Variant]:
    channels_last_inputs = to_channels_last(inputs)
    channels_last_model = copy.deepcopy(model).to(memory_format=torch.channels_last)
    baseline = with_grad_mode(torch.no_grad, model, inputs)
    variants = [Variant("no_grad", baseline)]
    if device.type == "cpu" and torch.get_num_threads() > 1:
        # On a shared machine one thread can beat several that wait for each other.
        variants.append(Variant("1 thread", with_threads(1, baseline)))
    variants += [
        Variant("inference_mode", with_grad_mode(torch.inference_mode, model, inputs)),
        Variant("+channels_last", with_grad_mode(torch.inference_mode, channels_last_model, channels_last_inputs)),
    ]
    if folded is not None:
        folded_channels_last = copy.deepcopy(folded).to(memory_format=torch.channels_last)
        variants += [
            Variant("+BN fold", with_grad_mode(torch.inference_mode, folded, inputs)),
            Variant("+both", with_grad_mode(torch.inference_mode, folded_channels_last, channels_last_inputs)),
        ]
    return variants


def warm_up(variants: list[Variant], reference, warmup: int, device: torch.device) -> float:
    """Run each column ``warmup`` times; return the largest output difference to ``reference``."""
    worst_difference = 0.0
    for variant in variants:
        for _ in range(max(1, warmup)):
            outputs = variant.run()
        synchronise(device)
        worst_difference = max(worst_difference, max_difference(reference, outputs))
    return worst_difference


def time_in_rounds(variants: list[Variant], repeats: int, device: torch.device) -> None:
    """Time every column once per round (:func:`~matting.bench.rounds.time_rounds`)."""
    seconds = time_rounds([lambda variant=variant: timed(variant.run, device)[0] for variant in variants], repeats)
    for variant, times in zip(variants, seconds):
        variant.times.extend(times)


def bench_config(config: Config, device: torch.device, warmup: int, repeats: int | None,
                 time_budget_s: float) -> Row:
    model, weights_note = build_model(config)
    model = model.to(device)
    inputs = make_inputs(config, device)
    notes = [weights_note]

    with torch.no_grad(), FlopCounterMode(display=False) as flop_counter:
        reference = model(*inputs)
    gflops = flop_counter.get_total_flops() / 1e9

    batch_norms = count_batch_norms(model)
    folded = fold_batchnorm(model, *inputs) if batch_norms else None
    folded_count = batch_norms - count_batch_norms(folded) if folded is not None else 0
    if folded_count == 0:
        folded = None
    variants = make_variants(model, inputs, folded, device)
    sha256 = weights.sha256_file(weights.path(config.checkpoint)) \
        if config.checkpoint and weights.usable(config.checkpoint) else None
    fast = models.accelerate(model, *inputs, weights_sha256=sha256)
    fast_variant = Variant("fast", lambda: fast(*inputs))
    variants.append(fast_variant)

    ort_variant = None
    onnx_path = weights.path(config.checkpoint) if config.checkpoint and weights.usable(config.checkpoint) else None
    if onnx_path is not None and weights.entry(config.checkpoint).container == "onnx":
        session = onnxruntime_session(onnx_path, device)
        if session is not None:
            feed = {session.get_inputs()[0].name: inputs[0].cpu().numpy()}
            ort_variant = Variant("onnxruntime", lambda: session.run(None, feed))
            variants.append(ort_variant)

    if "refine_sample_pixels" in config.kwargs:
        notes.append(f"{int(reference[-1].sum())} patches refined "
                     f"(sample_pixels / 16 = {config.kwargs['refine_sample_pixels'] // 16})")

    fast_difference = max_difference(reference, fast(*inputs))
    worst_difference = warm_up(variants, reference, warmup, device)
    if repeats is None:
        seconds_per_round = sum(timed(variant.run, device)[0] for variant in variants)
        repeats = int(min(MAX_ROUNDS, max(MIN_ROUNDS, time_budget_s // seconds_per_round)))
    time_in_rounds(variants, repeats, device)

    peak_mb = peak_memory_mb(variants[0].run, device)
    baseline = variants[0]
    speedups = {variant.name: variant.speedup_over(baseline) for variant in variants}
    if ort_variant is not None:
        fastest = max((variant for variant in variants if variant is not ort_variant),
                      key=lambda variant: speedups[variant.name])
        notes.append(f"{fastest.name} / ORT = {ort_variant.speedup_over(fastest):.2f}")
    return Row(
        config=config,
        params=sum(parameter.numel() for parameter in model.parameters()),
        gflops=gflops,
        peak_mb=peak_mb,
        repeats=repeats,
        times_ms={variant.name: variant.median_ms for variant in variants},
        speedups=speedups,
        spreads=[variant.spread for variant in variants],
        max_difference=worst_difference,
        bn_folded=f"{folded_count}/{batch_norms}" if batch_norms else "no BN",
        notes=notes + ([fast.note] if fast.note else []),
        backend=fast.backend,
        fast_ratio=1 / fast_variant.speedup_over(baseline),
        fast_difference=fast_difference,
    )


def models_threads() -> int:
    from ..threads import torch_threads

    return torch_threads()


def bench_device(configs, device: torch.device, args) -> None:
    if device.type == "cuda":
        where = f"{torch.cuda.get_device_name(device)}, TF32 off"
    else:
        where = f"{torch.get_num_threads()} torch threads"
    print(f"\n## {device.type.upper()}: torch {torch.__version__}, {where}, "
          f"load average {os.getloadavg()[0]:.1f} at start\n")
    print_table_header()
    rows = []
    for config in configs:
        repeats = args.repeats
        if config.is_4k and repeats is None:
            repeats = args.repeats_4k
        rows.append(bench_config(config, device, args.warmup, repeats, args.time_budget))
        print_row(rows[-1])
        release_freed_memory()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print(f"\nload average {os.getloadavg()[0]:.1f} at end")
    print(LEGEND)
    print_fast_table(rows, models_threads())


def main(argv=None) -> int:
    all_configs = configs_from_registry()
    families = list(dict.fromkeys(config.family for config in all_configs))
    parser = argparse.ArgumentParser(prog="python -m matting.bench models",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=families, default=families, metavar="CHECKPOINT",
                        help=f"networks to run, by checkpoint (default: all): {', '.join(families)}")
    parser.add_argument("--repeats", type=int,
                        help=f"timed rounds per row (default: as many as fit --time-budget, "
                             f"{MIN_ROUNDS} to {MAX_ROUNDS})")
    parser.add_argument("--repeats-4k", type=int, default=3, help="timed rounds of 4K rows without --repeats")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forwards per column first")
    parser.add_argument("--time-budget", type=float, default=90.0,
                        help="seconds of timed rounds to aim for per row when --repeats is not given")
    parser.add_argument("--skip-4k", action="store_true", help="leave out the 3840×2160 BGMv2 rows")
    parser.add_argument("--quick", action="store_true", help="3 rounds, 1 warm-up, no 4K")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's default)")
    parser.add_argument("--cpu-only", action="store_true", help="skip the CUDA table even with a GPU")
    parser.add_argument("--skip-end-to-end", action="store_true",
                        help="leave out U²-NetP end to end vs onnxruntime and the fresh-process first run")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.warmup, args.skip_4k = args.repeats or 3, 1, True
    if args.threads:
        torch.set_num_threads(args.threads)

    configs = [config for config in all_configs
               if config.family in args.models and not (config.is_4k and args.skip_4k)]
    print("# Neural networks at their official inference sizes")
    bench_device(configs, torch.device("cpu"), args)
    if not args.skip_end_to_end and weights.usable("u2netp"):
        from .end_to_end import print_end_to_end

        print_end_to_end(args.repeats or 10)

    if torch.cuda.is_available() and not args.cpu_only:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        bench_device(configs, torch.device("cuda"), args)
    return 0
