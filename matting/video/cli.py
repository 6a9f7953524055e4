"""``python -m matting video METHOD --video clip.mp4 [--background plate.png] [--ofd] --out out/``."""
from __future__ import annotations

import json

from . import CODECS, CUTOUT_FORMATS, DEFAULT_OUTPUTS, OUTPUTS, TRIMAP_NOTE, VideoLimits, matte_video, video_methods


def add_commands(subparsers) -> dict:
    names = ", ".join(spec.id for spec in video_methods())
    p = subparsers.add_parser(
        "video", help="matte a video clip with an automatic or background-plate method",
        description=f"Matte a clip frame by frame with one loaded method. Methods: {names}. {TRIMAP_NOTE}")
    p.add_argument("method")
    p.add_argument("--video", required=True, help="the clip (MP4, WebM, MOV, MKV, …)")
    p.add_argument("--background", help="background plate for BGMv2: one picture of the scene without the subject, "
                                        "the clip's size, used for every frame")
    p.add_argument("--out", required=True, help="output folder")
    ofd = p.add_mutually_exclusive_group()
    ofd.add_argument("--ofd", dest="ofd", action="store_true", default=None,
                     help="one-frame-delay smoothing (MODNet's OFD; on by default for modnet)")
    ofd.add_argument("--no-ofd", dest="ofd", action="store_false", help="no OFD")
    p.add_argument("--ofd-threshold", type=float, default=0.1, help="OFD's ξ on alpha in [0, 1] (default 0.1)")
    p.add_argument("--start", type=float, default=0.0, help="start of the range, seconds")
    p.add_argument("--duration", type=float, help="length of the range, seconds (default: to the end)")
    p.add_argument("--ground-truth", help="ground-truth alpha video: per-frame SAD/MSE, dtSSD, MESSDdt")
    p.add_argument("--outputs", default=",".join(DEFAULT_OUTPUTS),
                   help=f"comma-separated, of {', '.join(OUTPUTS)} (default {','.join(DEFAULT_OUTPUTS)})")
    p.add_argument("--codec", default="h264", choices=tuple(CODECS), help="alpha and composite videos")
    p.add_argument("--cutout", default="webm", choices=tuple(CUTOUT_FORMATS),
                   help="cut-out with transparency: webm = VP9 with alpha, mov = ProRes 4444")
    p.add_argument("--backdrop", default="colour", choices=("colour", "image", "checkerboard"))
    p.add_argument("--colour", default="#00b140")
    p.add_argument("--backdrop-image", help="picture to composite over (--backdrop image)")
    p.add_argument("--no-audio", action="store_true", help="do not keep the source's audio")
    p.add_argument("--max-frames", type=int, help="limit (default 300 or MATTING_VIDEO_MAX_FRAMES; 0 = none)")
    p.add_argument("--max-seconds", type=float, help="limit (default 20 or MATTING_VIDEO_MAX_SECONDS; 0 = none)")
    p.add_argument("--max-pixels", type=int, help="limit per frame (default 1280×720 or MATTING_VIDEO_MAX_PIXELS)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="method parameter")
    p.add_argument("--weights", help="use this checkpoint file instead of the downloaded one")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return {"video": cmd_video}


def cmd_video(args) -> int:
    from tqdm import tqdm

    from ..cli import parse_param, use_weights_file
    from ..registry import get

    spec = get(args.method)
    params = dict(parse_param(p) for p in args.param)
    if args.weights:
        use_weights_file(spec, params, args.weights)
    limits = VideoLimits.from_env(max_frames=args.max_frames, max_seconds=args.max_seconds,
                                  max_pixels=args.max_pixels)
    outputs = tuple(o.strip() for o in args.outputs.split(",") if o.strip())
    bar = None

    def progress(done, expected):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=expected, desc=spec.id, unit="frame", disable=args.quiet)
        bar.update(1)

    try:
        result = matte_video(
            spec.id, args.video, out=args.out, background=args.background, ofd=args.ofd,
            ofd_threshold=args.ofd_threshold, start=args.start, duration=args.duration,
            ground_truth=args.ground_truth, outputs=outputs, codec_name=args.codec, cutout_format=args.cutout,
            backdrop=args.backdrop, colour=args.colour, backdrop_image=args.backdrop_image,
            keep_audio=not args.no_audio, limits=limits, progress=progress, **params)
    finally:
        if bar is not None:
            bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}")
    summary = {k: v for k, v in result.summary().items() if k not in ("flicker", "ground_truth_errors")}
    summary["flicker_mean"] = {"with_output": result.flicker_mean, "without_ofd": result.flicker_raw_mean,
                               "units": "mean |Δα| × 10³ over static pixels"}
    if result.errors:
        summary["ground_truth_errors"] = {k: v for k, v in result.errors.items() if k != "per_frame"}
    print(json.dumps(summary, indent=2, default=str, ensure_ascii=False))
    print(f"{result.frames} frames in {result.seconds:.2f} s: {result.frames_per_second:.2f} frames/s "
          f"(model load {result.load_seconds:.2f} s) → {args.out}")
    return 0
