"""Video matting: frames/s per method, and what the video path costs over the still-image path.

``python -m matting.bench video [--methods u2netp,modnet,…] [--sizes 512,1080p] [--frames 12] [--memory]``

For each method and frame size a synthetic clip (a soft disc moving over a smooth background, H.264)
is written, then, interleaved round-robin over ``--rounds`` rounds (medians reported):

* **still**: the still-image path, ``session.run(frame)`` per frame on frames already decoded into
  memory (one loaded session, the video run's parameters);
* **video**: :func:`matting.video.iter_mattes` over the clip — decoding included — through the same
  session, with OFD; the ratio video / still is the overhead of the video path (target ≤ 1.1×). The
  two are paired frame by frame (one still run, one video step, the order alternating), so that the
  load of a shared machine drifts over both alike;
* **encode**: :func:`matting.video.matte_video` writing the alpha (H.264), the composite (H.264) and
  the cut-out (VP9 with alpha): the whole job, load excluded.

MODNet and BGMv2 run with random-recipe weights when their checkpoints are absent (timing does not
depend on the values). ``--memory`` measures peak RSS of a whole ``matte_video`` run in a fresh
process for a 30-frame and a 600-frame 1280×720 clip (selfie segmentation: memory, not the model,
is the point); streamed, the two should be within 1.5×.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"512": (512, 512), "720p": (1280, 720), "1080p": (1920, 1080)}
DEFAULT_METHODS = ("u2netp", "selfie_segmentation", "modnet", "bgmv2")


def _random_weights(folder: Path, method_id: str) -> None:
    """Random-recipe checkpoints for a method whose official ones are absent (timing only)."""
    import torch

    from .. import weights
    from ..models import create

    recipes = {"modnet": ("modnet_photographic", "modnet", {}),
               "bgmv2": ("bgmv2_mobilenetv2", "bgmv2_refine", {"backbone": "mobilenetv2"})}
    if method_id not in recipes:
        return
    checkpoint_id, arch, kwargs = recipes[method_id]
    if weights.usable(checkpoint_id):
        return
    path = folder / weights.entry(checkpoint_id).file
    torch.manual_seed(0)
    torch.save(create(arch, **kwargs).eval().state_dict(), path)
    weights.use_file(checkpoint_id, path)
    print(f"  ({method_id}: random-recipe weights, the official checkpoint is absent)")


def _clip(folder: Path, size, frames: int):
    from ..video import synthetic

    width, height = size
    return synthetic.disc_clip(folder / f"{width}x{height}", width=width, height=height, frames=frames, fps=25)


def bench_one(method_id: str, clip, rounds: int, work: Path) -> dict:
    import matting
    from matting import io
    from matting.video import VideoLimits, codec, iter_mattes, matte_video, video_params

    spec = matting.get(method_id)
    params = video_params(spec, {})
    session = matting.session(method_id, **params)
    frames = [frame for _, _, frame in codec.read_frames(clip.video)]
    plate = io.load_image(clip.plate) if spec.accepts("background") else None
    session.run(frames[0], background=plate)  # warm-up (first-call allocations, thread pools)
    unlimited = VideoLimits(0, 0, 0)
    still, video, full = [], [], []
    for round_index in range(rounds):
        # Paired: each frame through the still path and the next step of the video path back to back,
        # the order alternating, so that a shared machine's load drift hits both alike.
        still_total = video_total = 0.0
        frames_out = iter_mattes(session, clip.video, background=plate, ofd=True)
        for index, frame in enumerate(frames):
            for which in ((0, 1) if (index + round_index) % 2 == 0 else (1, 0)):
                start = time.perf_counter()
                if which == 0:
                    session.run(frame, background=plate)
                    still_total += time.perf_counter() - start
                else:
                    next(frames_out, None)
                    video_total += time.perf_counter() - start
        start = time.perf_counter()
        for _ in frames_out:  # OFD's last frame (already matted)
            pass
        video_total += time.perf_counter() - start
        still.append(still_total / len(frames))
        video.append(video_total / len(frames))
        start = time.perf_counter()
        result = matte_video(method_id, clip.video, out=work / "out", session=session,
                             background=clip.plate if plate is not None else None, limits=unlimited)
        full.append((time.perf_counter() - start) / result.frames)
    session.close()
    still_s, video_s, full_s = (statistics.median(v) for v in (still, video, full))
    return {"method": method_id, "size": f"{clip.width}×{clip.height}", "frames": len(frames),
            "still_ms": still_s * 1e3, "video_ms": video_s * 1e3, "full_ms": full_s * 1e3,
            "video_fps": 1 / video_s, "full_fps": 1 / full_s, "ratio": video_s / still_s, "full_ratio": full_s / still_s}


def print_table(rows: list[dict]) -> None:
    from ..cli import format_table

    table = [[r["method"], r["size"], str(r["frames"]), f"{r['still_ms']:.0f}", f"{r['video_ms']:.0f}",
              f"{r['video_fps']:.2f}", f"{r['ratio']:.2f}×", f"{r['full_ms']:.0f}", f"{r['full_fps']:.2f}",
              f"{r['full_ratio']:.2f}×"] for r in rows]
    print(format_table(table, ["method", "frame", "frames", "still ms/f", "video ms/f", "video f/s",
                               "video/still", "+encode ms/f", "+encode f/s", "+encode/still"]))


# --------------------------------------------------------------------------- memory

CHILD = """
import resource, sys, json
from matting.video import matte_video, VideoLimits
result = matte_video(sys.argv[1], sys.argv[2], out=sys.argv[3], limits=VideoLimits(0, 0, 0))
print(json.dumps({"frames": result.frames, "seconds": result.seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure_memory(method_id: str, work: Path, counts=(30, 600), size=(1280, 720)) -> list[dict]:
    rows = []
    for count in counts:
        clip = _clip(work / f"memory_{count}", size, count)
        output = subprocess.run([sys.executable, "-c", CHILD, method_id, str(clip.video), str(work / f"mem_out_{count}")],
                                capture_output=True, text=True, check=True)
        row = json.loads(output.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"  {count:4d} frames {size[0]}×{size[1]}: peak RSS {row['peak_rss_mb']:.0f} MB "
              f"({row['frames'] / row['seconds']:.2f} frames/s)")
    ratio = rows[-1]["peak_rss_mb"] / rows[0]["peak_rss_mb"]
    print(f"  peak RSS {counts[-1]} / {counts[0]} frames: {ratio:.2f}× (target ≤ 1.5×: streamed, not buffered)")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m matting.bench video", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--sizes", default="512,1080p", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="also peak RSS for 30 vs 600 frames at 720p")
    parser.add_argument("--memory-only", action="store_true")
    parser.add_argument("--memory-method", default="selfie_segmentation")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)

    import torch

    print(f"torch threads: {torch.get_num_threads()} · {time.strftime('%Y-%m-%d %H:%M')}")
    rows, memory = [], None
    with tempfile.TemporaryDirectory(prefix="matting-bench-video-") as folder:
        work = Path(folder)
        if not args.memory_only:
            for size_name in args.sizes.split(","):
                clip = _clip(work, SIZES[size_name.strip()], args.frames)
                for method_id in [m.strip() for m in args.methods.split(",") if m.strip()]:
                    _random_weights(work, method_id)
                    print(f"{method_id} at {clip.width}×{clip.height} …", flush=True)
                    rows.append(bench_one(method_id, clip, args.rounds, work))
            print()
            print_table(rows)
        if args.memory or args.memory_only:
            print(f"\nMemory ({args.memory_method}, whole matte_video run in a fresh process):")
            memory = measure_memory(args.memory_method, work)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "memory": memory}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
