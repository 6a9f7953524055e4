"""Hostile input: whatever a user hands over ends in a correct result or one MattingError — never another
exception, never a hang, never unbounded memory.

Property tests (Hypothesis) cover each kind of input: arrays of any dtype / shape / values, PIL images of
any mode, arbitrary bytes as files, arbitrary parameter values for every registered method, method ids and
pixel limits. Their number of cases comes from the Hypothesis profile (tests/conftest.py): ``default`` keeps
CI fast, ``HYPOTHESIS_PROFILE=thorough`` runs ≥ 1,000 cases per test for a manual run.

Special files (FIFO, /dev/zero, a folder, symlink loops) and a pixel bomb sent as a painter layer run in a
child process with an address-space limit and a timeout, so that a regression fails the test instead of
hanging it or exhausting the machine; the child reports its peak RSS.
"""
from __future__ import annotations

import io as stdio
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import matting
from matting import decoding, io
from matting.errors import MattingError
from matting.spec import Param

REPO = Path(__file__).resolve().parents[1]
GiB = 2**30


# --------------------------------------------------------------------------- checking results

def _check_image(array, shape=None):
    assert isinstance(array, np.ndarray) and array.dtype == np.float32
    assert array.ndim == 3 and array.shape[2] == 3
    assert np.isfinite(array).all() and array.min() >= 0.0 and array.max() <= 1.0
    if shape is not None:
        assert array.shape[:2] == tuple(shape[:2])


def _check_trimap(trimap):
    assert trimap.dtype == np.uint8 and trimap.ndim == 2
    assert set(np.unique(trimap)) <= {0, 128, 255}


def _check_alpha(alpha):
    assert alpha.dtype == np.float32 and alpha.ndim == 2
    assert np.isfinite(alpha).all() and alpha.min() >= 0.0 and alpha.max() <= 1.0


def _check_scribbles(scribbles):
    assert isinstance(scribbles, io.Scribbles)
    assert scribbles.foreground.dtype == bool and scribbles.background.dtype == bool
    assert scribbles.foreground.ndim == 2 and scribbles.foreground.shape == scribbles.background.shape
    assert not (scribbles.foreground & scribbles.background).any()


LOADERS = {
    "image": (lambda s, **kw: io.load_image(s, **kw), _check_image),
    "trimap": (lambda s, **kw: io.load_trimap(s, **kw), _check_trimap),
    "scribbles": (lambda s, **kw: io.load_scribbles(s, **kw), _check_scribbles),
    "alpha": (lambda s, **kw: io.load_alpha(s, **kw), _check_alpha),
    "mask": (lambda s, **kw: io.load_mask(s, **kw), _check_alpha),
}


def _every_loader(source, **kwargs):
    """Each loader ends in a valid canonical value or a MattingError; returns how many accepted."""
    accepted = 0
    for name, (load, check) in LOADERS.items():
        try:
            value = load(source, **kwargs)
        except MattingError as exc:
            assert str(exc), name
            continue
        check(value)
        accepted += 1
    return accepted


# --------------------------------------------------------------------------- arrays

DTYPES = [np.bool_, np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64,
          np.float16, np.float32, np.float64, np.longdouble, np.complex64, ">u2", ">i4", ">f4", ">f8",
          "<M8[s]", "<m8[s]", "<U2", "|S2"]

SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=12),
    st.tuples(st.integers(6, 24), st.integers(6, 24)),
    st.tuples(st.integers(6, 24), st.integers(6, 24), st.integers(0, 5)),
)


@st.composite
def arrays(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(SHAPES)
    if dtype.kind in "fc" and draw(st.booleans()):  # mostly in-range floats, with NaN / inf sprinkled in
        elements = st.one_of(st.floats(0, 1, width=32), st.sampled_from([np.nan, np.inf, -np.inf, 255.0, -0.5]))
        return draw(hnp.arrays(dtype, shape, elements=elements))
    if dtype.kind == "u" and dtype.itemsize == 1 and draw(st.booleans()):  # often a plausible trimap
        return draw(hnp.arrays(dtype, shape, elements=st.sampled_from([0, 128, 255, 127, 3])))
    return draw(hnp.arrays(dtype, shape))


@given(array=arrays())
def test_arbitrary_arrays(array):
    _every_loader(array)


def test_array_subclasses():
    matrix = np.asmatrix(np.full((16, 16), 128, np.uint8))
    masked = np.ma.masked_array(np.full((16, 16, 3), 0.5), mask=False)
    assert _every_loader(matrix) >= 1 and _every_loader(masked) >= 1


@given(array=arrays(), data=st.data())
def test_arbitrary_arrays_through_run(array, data, probe_method):
    """The same arrays as every input of run(), for a method that costs nothing."""
    image = data.draw(st.one_of(st.just(np.full((16, 16, 3), 0.5, np.float32)), st.just(array)))
    which = data.draw(st.sampled_from(["trimap", "scribbles", "background"]))
    try:
        result = matting.run(probe_method, image, **{which: array}, foreground="none")
    except MattingError:
        return
    _check_alpha(result.alpha)


def _probe_compute(inputs, params):
    return matting.MethodOutput(alpha=np.zeros(inputs.shape, np.float32))


@pytest.fixture(scope="module")
def probe_method():
    from matting import registry

    spec = matting.MethodSpec(
        id="_hostile_probe", name="Hostile probe", family="trimap", compute=_probe_compute,
        card=matting.get("closed_form").card, one_of_inputs=("trimap", "scribbles"),
        optional_inputs=("background",))
    registry.register(spec)
    yield spec.id
    registry.unregister(spec.id)


def _strokes(shape):
    foreground = np.zeros(shape, bool)
    background = np.zeros(shape, bool)
    foreground.flat[0] = True
    background.flat[-1] = True
    return foreground, background


@given(fg=hnp.arrays(st.sampled_from([np.bool_, np.uint8, np.float32, np.float64, np.int64]),
                     hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=12)),
       bg_same=st.booleans())
def test_arbitrary_scribble_objects(fg, bg_same):
    bg = fg if bg_same else np.zeros(fg.shape[:2] if fg.ndim >= 2 else fg.shape, fg.dtype)
    for source in (io.Scribbles(fg, bg), (fg, bg)):
        try:
            scribbles = io.load_scribbles(source)
        except MattingError:
            continue
        _check_scribbles(scribbles)


def test_scribble_object_with_3d_masks_is_refused():
    fg, bg = _strokes((16, 16, 3))
    with pytest.raises(MattingError, match="2-D"):
        io.load_scribbles(io.Scribbles(fg, bg), expected_shape=(16, 16))
    with pytest.raises(MattingError, match="same size"):
        io.load_scribbles((np.zeros((16, 16), bool), np.zeros((12, 16), bool)))


# --------------------------------------------------------------------------- PIL images of every mode

PIL_MODES = sorted({"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB",
                    "HSV", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"} | set(Image.MODES))


def _creatable_modes():
    modes = []
    for mode in PIL_MODES:
        try:
            Image.new(mode, (2, 2))
        except (ValueError, OSError):
            continue
        modes.append(mode)
    return modes


@st.composite
def pil_images(draw):
    mode = draw(st.sampled_from(_creatable_modes()))
    size = draw(st.tuples(st.integers(1, 24), st.integers(1, 24)))
    nbytes = len(Image.new(mode, size).tobytes())
    data = draw(st.one_of(st.binary(min_size=nbytes, max_size=nbytes),
                          st.sampled_from([b"\0", b"\x80", b"\xff"]).map(lambda b: b * nbytes)))
    image = Image.frombytes(mode, size, data)
    if mode in ("P", "PA") and draw(st.booleans()):
        image.info["transparency"] = 0
    return image


@given(image=pil_images())
def test_arbitrary_pil_modes(image):
    _every_loader(image)


ENCODINGS = ["PNG", "TIFF", "BMP", "WEBP", "GIF", "JPEG", "PPM", "TGA", "ICO", "IM", "PCX", "SGI"]


@given(image=pil_images(), encoding=st.sampled_from(ENCODINGS))
def test_arbitrary_pil_modes_as_files(image, encoding):
    buffer = stdio.BytesIO()
    try:
        image.save(buffer, format=encoding)
    except Exception:  # noqa: BLE001 - this mode cannot be written in this format: nothing to test
        assume(False)
    _every_loader(buffer.getvalue())


@pytest.mark.parametrize("values,message", [
    (np.array([[np.nan, 0.5]] * 8, np.float32).repeat(4, axis=1), "NaN or infinite"),
    (np.full((8, 8), 1e30, np.float32), "must lie in"),
    (np.full((8, 8), 200.0, np.float32), "divide by 255"),
])
@pytest.mark.parametrize("container", ["pil", "tiff"])
def test_float_images_are_range_checked(values, message, container):
    image = Image.fromarray(values, mode="F")
    source = image
    if container == "tiff":
        buffer = stdio.BytesIO()
        image.save(buffer, format="TIFF")
        source = buffer.getvalue()
    with pytest.raises(MattingError, match=message):
        io.load_image(source)


@pytest.mark.parametrize("value,message", [(-5, r"values in \[-5"), (70000, "0…65535"), (2**31 - 1, "0…65535")])
def test_32_bit_integer_images_are_range_checked(value, message):
    image = Image.fromarray(np.full((8, 8), value, np.int32), mode="I")
    buffer = stdio.BytesIO()
    image.save(buffer, format="TIFF")
    for source in (image, buffer.getvalue()):
        with pytest.raises(MattingError, match=message):
            io.load_image(source)
    # in range: 16-bit data in an 'I' image is still read as 16-bit
    ok = io.load_image(Image.fromarray(np.full((8, 8), 65535, np.int32), mode="I"))
    assert np.allclose(ok, 1.0)


def test_float_tiff_with_nan_does_not_reach_a_solver():
    image = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    image[4, 4] = np.nan
    buffer = stdio.BytesIO()
    Image.fromarray(image, mode="F").save(buffer, format="TIFF")
    trimap = np.full((32, 32), 128, np.uint8)
    trimap[:8], trimap[-8:] = 0, 255
    with pytest.raises(MattingError, match="NaN"):
        matting.run("closed_form", buffer.getvalue(), trimap=trimap, foreground="none")


@pytest.mark.parametrize("mode", ["La", "RGBa", "LAB", "HSV", "CMYK", "YCbCr", "I;16B", "PA", "1"])
def test_rare_pil_modes_load(mode):
    image = Image.new(mode, (16, 16))
    _check_image(io.load_image(image))


# --------------------------------------------------------------------------- arbitrary bytes as files

def _sample_files():
    rng = np.random.default_rng(1)
    rgb = Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8))
    out = []
    for encoding in ("PNG", "JPEG", "TIFF", "BMP", "GIF", "WEBP"):
        buffer = stdio.BytesIO()
        rgb.save(buffer, format=encoding)
        out.append(buffer.getvalue())
    return out


SAMPLE_FILES = _sample_files()


@st.composite
def file_bytes(draw):
    kind = draw(st.sampled_from(["random", "mutated", "truncated", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=4096))
    data = bytearray(draw(st.sampled_from(SAMPLE_FILES)))
    if kind == "truncated":
        return bytes(data[: draw(st.integers(0, len(data)))])
    if kind == "header":  # a real header followed by garbage
        return bytes(data[: draw(st.integers(0, 64))]) + draw(st.binary(max_size=512))
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    return bytes(data)


@given(data=file_bytes())
def test_arbitrary_bytes_as_files(data):
    _every_loader(data)
    _every_loader(memoryview(bytearray(data)))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "upload.bin"
        path.write_bytes(data)
        _every_loader(path)
        _every_loader(str(path))


PATHS = st.one_of(
    st.text(max_size=40),
    st.integers(1, 20_000).map(lambda n: "x" * n),  # over-long names and paths
    st.integers(1, 3000).map(lambda n: "/".join(["d"] * n)),
    st.text(max_size=10).map(lambda t: t + "\0" + t),
    st.binary(max_size=40).map(lambda b: Path(os.fsdecode(b.replace(b"\0", b"")) or ".")),
)


@given(path=PATHS)
def test_arbitrary_paths(path):
    with tempfile.TemporaryDirectory() as folder:
        cwd = os.getcwd()
        os.chdir(folder)  # relative paths land in an empty folder
        try:
            for name, (load, check) in LOADERS.items():
                try:
                    check(load(path))
                except MattingError:
                    pass
        finally:
            os.chdir(cwd)


def test_over_long_path_is_a_clear_message():
    with pytest.raises(MattingError, match="too long"):
        io.load_image("/tmp/" + "x" * 5000)
    with pytest.raises(MattingError, match="too long"):
        io.load_image("x" * 300 + ".png")


# --------------------------------------------------------------------------- parameters, method ids, limits

HOSTILE_VALUES = st.one_of(
    st.integers(), st.integers(-10**400, 10**400), st.sampled_from([10**400, -10**400, 10**5000, 2**1024]),
    st.floats(), st.booleans(), st.none(), st.text(max_size=20),
    st.sampled_from(["1" + "0" * 400, "1e400", "nan", "-inf", "true", "False", "0", "1", " 3 ", "1_0", ""]),
    st.integers(0, 100).map(str), st.floats(allow_nan=True).map(repr),
    st.complex_numbers(), st.binary(max_size=8), st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    hnp.arrays(st.sampled_from([np.float64, np.int64, np.bool_, "<U4"]),
               hnp.array_shapes(min_dims=0, max_dims=2, max_side=3)),
    st.sampled_from([np.float32(0.5), np.int64(3), np.bool_(True), np.str_("none"), np.nan]),
    st.decimals(allow_nan=True), st.fractions(), st.just(Decimal("sNaN")), st.just(Fraction(10**400, 3)),
    st.just(object()),
)


def _all_params():
    return [(spec.id, p) for spec in matting.methods() for p in spec.params]


def _check_param_value(param: Param, value):
    if param.kind == "choice":
        assert value in param.choices
    elif param.kind == "bool":
        assert isinstance(value, bool)
    else:
        assert isinstance(value, (int, float)) and np.isfinite(value)
        assert isinstance(value, int) or param.kind == "float"
        assert param.minimum is None or value >= param.minimum
        assert param.maximum is None or value <= param.maximum


@given(data=st.data())
def test_arbitrary_parameter_values_for_every_method(data):
    method_id, param = data.draw(st.sampled_from(_all_params()), label="param")
    value = data.draw(st.one_of(HOSTILE_VALUES, st.sampled_from(param.choices or (param.default,))), label="value")
    try:
        _check_param_value(param, param.validate(value, method_id))
    except MattingError:
        pass


@given(data=st.data())
def test_arbitrary_parameter_text_from_the_cli(data):
    from matting.cli import parse_param

    method_id, param = data.draw(st.sampled_from(_all_params()), label="param")
    text = data.draw(st.one_of(st.text(max_size=30), st.sampled_from(["1" + "0" * 400, "1" * 5000, "1e999"]),
                               st.integers().map(str), st.floats().map(str)), label="text")
    try:
        _, value = parse_param(f"{param.name}={text}")
        _check_param_value(param, param.validate(value, method_id))
    except MattingError:
        pass


@pytest.mark.parametrize("value", [10**400, -10**400, "1" + "0" * 400, np.array([1, 2]), np.array([True])])
def test_parameter_values_that_used_to_crash(value):
    for spec in matting.methods():
        for param in spec.params:
            try:
                param.validate(value, spec.id)
            except MattingError:
                pass


def test_cli_huge_parameter_is_an_error_message(capsys, tmp_path):
    from matting.cli import main

    photo = tmp_path / "photo.png"
    Image.new("RGB", (16, 16)).save(photo)
    code = main(["run", "closed_form", "--image", str(photo), "--trimap", str(photo), "--out", str(tmp_path / "o"),
                 "-p", "radius=1" + "0" * 400])
    assert code == 2 and "radius" in capsys.readouterr().err


@given(method_id=st.one_of(HOSTILE_VALUES, st.sampled_from(["closed_form", "closed_from"])))
def test_arbitrary_method_ids(method_id):
    try:
        spec = matting.get(method_id)
    except MattingError:
        return
    assert spec.id == method_id


LIMITS = st.one_of(HOSTILE_VALUES, st.integers(0, 10_000), st.sampled_from([-1, 0, 255, 256, float("inf"), "1e400",
                                                                            "-5", "abc", "1000", "0"]))


@given(limit=LIMITS, env=st.booleans())
def test_arbitrary_pixel_limits(limit, env):
    image = np.zeros((16, 16, 3), np.uint8)
    saved = os.environ.get("MATTING_MAX_PIXELS")
    try:
        if env:
            try:
                os.environ["MATTING_MAX_PIXELS"] = str(limit)
            except (ValueError, UnicodeEncodeError):  # a NUL or a surrogate cannot be in the environment
                assume(False)
            kwargs = {}
        else:
            kwargs = {"max_pixels": limit}
        for source in (image, SAMPLE_FILES[0]):
            try:
                _check_image(io.load_image(source, **kwargs))
            except MattingError:
                pass
    finally:
        if saved is None:
            os.environ.pop("MATTING_MAX_PIXELS", None)
        else:
            os.environ["MATTING_MAX_PIXELS"] = saved


@pytest.mark.parametrize("limit", [-1, float("inf"), float("nan"), "abc", [1], "1e400"])
def test_bad_pixel_limits_are_clear_messages(limit, monkeypatch):
    with pytest.raises(MattingError, match="max_pixels"):
        io.load_image(np.zeros((16, 16, 3), np.uint8), max_pixels=limit)
    monkeypatch.setenv("MATTING_MAX_PIXELS", str(limit))
    with pytest.raises(MattingError, match="MATTING_MAX_PIXELS"):
        io.load_image(np.zeros((16, 16, 3), np.uint8))


def test_non_string_method_ids():
    for value in ([1], {"a": 1}, None, 3, np.array(["closed_form"])):
        with pytest.raises(MattingError, match="method"):
            matting.get(value)


# --------------------------------------------------------------------------- special files and bombs (child process)

CHILD = textwrap.dedent(r"""
    import json, os, resource, sys, time, warnings
    warnings.simplefilter("ignore")
    cases = json.loads(sys.argv[1])
    import numpy as np
    from matting import io
    from matting.errors import MattingError
    if any(c["kind"] == "painter" for c in cases):
        import gradio  # noqa: F401  (import before measuring the baseline)
        from gradio.components.image_editor import EditorData, ImageEditor
        from gradio.data_classes import FileData

    def vm_bytes():
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))

    head = int(float(os.environ.get("CHILD_HEADROOM", 2 * 2**30)))
    limit = vm_bytes() + head
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    def peak_rss():
        # VmHWM, this process image's own high-water mark: ru_maxrss would carry over the RSS of the pytest
        # process that forked this child (Linux keeps it across exec), which a full suite run makes GBs.
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))

    base = peak_rss()
    out = []
    for case in cases:
        start = time.monotonic()
        try:
            if case["kind"] == "painter":
                # exactly what the app's painter (gr.ImageEditor, see matting/ui/layout.py) does with a layer
                editor = ImageEditor(type="numpy", image_mode="RGBA", format="png")
                value = editor.preprocess(EditorData(background=None, layers=[FileData(path=case["path"])],
                                                     composite=None))
                from matting.ui.editor import trimap_from_editor
                trimap_from_editor(value, (64, 64))
            elif case["kind"] == "bytes":
                getattr(io, case["loader"])(open(case["path"], "rb").read())
            else:
                getattr(io, case["loader"])(case["path"])
            outcome, message = "accepted", ""
        except MattingError as exc:
            outcome, message = "MattingError", str(exc)
        except BaseException as exc:  # noqa: BLE001
            outcome, message = type(exc).__name__, str(exc)[:300]
        out.append({"name": case["name"], "outcome": outcome, "message": message[:300],
                    "seconds": round(time.monotonic() - start, 3)})
    peak = peak_rss()
    print(json.dumps({"cases": out, "peak_rss": peak, "baseline_rss": base}))
""")


def _run_child(cases, timeout=120):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("MATTING_MAX_PIXELS", None)  # the default pixel limit
    try:
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the loaders hung: no answer within {timeout} s for {[c['name'] for c in cases]}")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(report, indent=1))
    return report


def _special_files(folder: Path) -> dict[str, str]:
    fifo = folder / "pipe.png"
    os.mkfifo(fifo)
    loop_a, loop_b = folder / "loop_a.png", folder / "loop_b.png"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    self_loop = folder / "self.png"
    self_loop.symlink_to(self_loop)
    (folder / "dir.png").mkdir()
    sock_path = folder / "sock.png"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    files = {"fifo": str(fifo), "symlink loop": str(loop_a), "self loop": str(self_loop),
             "folder": str(folder / "dir.png"), "socket": str(sock_path), "dangling": str(folder / "gone.png")}
    for device in ("/dev/zero", "/dev/urandom", "/dev/null"):
        if os.path.exists(device):
            files[device] = device
    return files


@pytest.mark.timeout(300)
def test_special_files_are_refused_quickly_with_bounded_memory(tmp_path):
    files = _special_files(tmp_path)
    cases = [{"name": f"{name} as {loader}", "kind": "path", "loader": loader, "path": path}
             for name, path in files.items() for loader in ("load_image", "load_trimap", "load_alpha")]
    report = _run_child(cases, timeout=90)
    for case in report["cases"]:
        assert case["outcome"] == "MattingError", case
        assert case["seconds"] < 10, case
    messages = {c["name"]: c["message"] for c in report["cases"]}
    assert "FIFO" in messages["fifo as load_image"]
    if "/dev/zero" in files:
        assert "device" in messages["/dev/zero as load_image"]
    assert "socket" in messages["socket as load_image"]
    assert "folder" in messages["folder as load_image"]
    assert "loop" in messages["symlink loop as load_image"]
    assert report["peak_rss"] < 2 * GiB


def _png_bomb(path: Path, width=12000, height=16000) -> Path:
    """A valid all-transparent RGBA PNG of width × height: about 750 KB on disk, 768 MB decoded."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj(6)
    row = b"\0" * (1 + 4 * width)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.timeout(300)
def test_pixel_bomb_is_refused_before_decoding_everywhere(tmp_path):
    bomb = _png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 2**20
    # just under PIL's refusal threshold (2 × 16 MP): Gradio decodes it, the painter refuses it
    near = _png_bomb(tmp_path / "near.png", 5600, 5600)
    cases = [{"name": "painter layer", "kind": "painter", "path": str(bomb)},
             {"name": "painter layer 31 MP", "kind": "painter", "path": str(near)}]
    for loader in ("load_image", "load_trimap", "load_scribbles", "load_alpha", "load_mask"):
        cases.append({"name": f"{loader} path", "kind": "path", "loader": loader, "path": str(bomb)})
        cases.append({"name": f"{loader} bytes", "kind": "bytes", "loader": loader, "path": str(bomb)})
    report = _run_child(cases, timeout=240)
    by_name = {c["name"]: c for c in report["cases"]}
    near = by_name.pop("painter layer 31 MP")
    assert near["outcome"] == "MattingError" and "above the limit" in near["message"], near
    painter = by_name.pop("painter layer")
    # Gradio decodes the layer itself; PIL's process-wide guard (kept by matting.io) refuses it unread.
    assert painter["outcome"] in ("DecompressionBombError", "MattingError"), painter
    for case in by_name.values():
        assert case["outcome"] == "MattingError" and "above the limit" in case["message"], case
    for case in report["cases"]:
        assert case["seconds"] < 60, case
    assert report["peak_rss"] < 2 * GiB
    assert report["peak_rss"] - report["baseline_rss"] < 1 * GiB


def test_painter_layers_over_the_pixel_limit_are_refused(monkeypatch):
    from matting.ui.editor import trimap_from_editor

    layer = np.zeros((64, 64, 4), np.uint8)
    layer[..., 3] = 255
    monkeypatch.setenv("MATTING_MAX_PIXELS", "1000")
    with pytest.raises(MattingError, match="painted layer.*above the limit"):
        trimap_from_editor({"layers": [layer]}, (64, 64))
    with pytest.raises(MattingError, match="RGBA image"):
        trimap_from_editor({"layers": [layer.astype(object)]}, (64, 64))


def _png_header_only(width, height) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_pil_guard_stays_on_for_the_whole_process():
    """Other decoders in the process (Gradio's) meet PIL's guard: a bomb's header is refused unread."""
    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS >= io.DEFAULT_MAX_PIXELS
    with pytest.raises(Image.DecompressionBombError):
        Image.open(stdio.BytesIO(_png_header_only(100_000, 100_000)))
    with pytest.raises(MattingError, match="above the limit"):
        io.load_image(_png_header_only(100_000, 100_000))
    guard = Image.MAX_IMAGE_PIXELS
    assert 6000 * 6000 > 2 * guard or os.environ.get("MATTING_MAX_PIXELS")
    # with no pixel limit, io reads the header past PIL's guard (and then finds no pixel data)
    with pytest.raises(MattingError, match="truncated or corrupt"):
        io.load_image(_png_header_only(6000, 6000), max_pixels=0)
    assert Image.MAX_IMAGE_PIXELS == guard  # never changed, not even for a moment


def test_file_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(decoding, "MIN_FILE_CAP_BYTES", 1000)
    monkeypatch.setattr(decoding, "FILE_BYTES_PER_PIXEL", 1)
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * 5000)
    with pytest.raises(MattingError, match="cap on image files"):
        io.load_image(big, max_pixels=1000)
    with pytest.raises(MattingError, match="cap on image files"):
        io.load_image(big.read_bytes(), max_pixels=1000)
