"""Users' own code in workflows: user functions through the CLI, plugin ops through the
``pipeline.ops`` entry point (examples/ installed for real, with pip), and the PyTorch
tile-inference example checked against SciPy."""

import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pipeline
from pipeline.cli import main
from pipeline.ops import plugins, registry
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "tile_inference.yaml"
SMALL = {"stages.noise.shape": [2, 128, 192], "stages.noise.chunks": [1, 64, 96],
         "stages.ramp.step": 1 / 192, "stages.classes.kwargs": {"tile": 32},
         "stages.classes.chunks": [None, 2, 3, 3]}


def write(tmp_path, text):
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_user_function_failures_exit_1_naming_the_stage(tmp_path, address, capsys):
    wf = write(tmp_path, """
        name: u
        stages:
          - {id: x, op: random, shape: [40, 4], chunks: [10, 4]}
          - {id: boom, op: map_blocks, input: x, function: "tests.userfuncs:explode",
             kwargs: {message: "tile 3 is corrupt"}}
          - {id: w, op: write, input: boom, path: y.npy}
    """)
    code = main(["run", wf, "--trust-workflow", "--address", address, "--quiet",
                 "--output-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "\n" not in err
    assert "stage 'boom': tests.userfuncs:explode raised ValueError: tile 3 is corrupt " \
           "(at userfuncs.py:" in err
    assert not (tmp_path / "out" / "y.npy").exists()


def test_bad_function_is_exit_2_at_validation(tmp_path, capsys):
    wf = write(tmp_path, """
        name: u
        stages:
          - {id: x, op: random, shape: [4, 4]}
          - {id: f, op: map_blocks, input: x, function: "no_such_pkg.tiles:classify"}
          - {id: w, op: write, input: f, path: y.npy}
    """)
    assert main(["validate", wf, "--trust-workflow"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: {wf}: stages.f.function: cannot import 'no_such_pkg.tiles': No module "
        "named 'no_such_pkg' (is it installed, or on PYTHONPATH, for this process and the "
        "workers?)")


@pytest.fixture(scope="module")
def examples(tmp_path_factory):
    """The examples package installed by pip into a folder put on sys.path, so its entry
    point is found as a real installed distribution's; the in-process cluster's workers
    share sys.path. Undone afterwards."""
    import shutil

    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "examples"
    shutil.copytree(REPO / "examples", source, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(target),
                    str(source)], check=True, capture_output=True, timeout=180)
    sys.path.insert(0, str(target))
    plugins._loaded = False
    try:
        yield target
    finally:
        sys.path.remove(str(target))
        registry.REGISTRY.pop("zscore", None)
        plugins._loaded = False
        plugins.FAILED.clear()
        for name in [m for m in sys.modules if m.startswith("pipeline_examples")]:
            del sys.modules[name]


def test_plugin_ops_are_listed_and_described(examples, capsys):
    assert main(["ops"]) == 0
    listing = capsys.readouterr().out
    assert "  zscore " in listing and "[plugin: pipeline-examples]" in listing
    assert main(["ops", "zscore"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("zscore  (array op; takes input: <id>; plugin: pipeline-examples)")
    assert re.search(r"^  ddof +integer; default 0$", text, re.M)


def test_plugin_op_against_numpy(examples, session, tmp_path):
    data = np.random.default_rng().uniform(0, 5, (3, 20, 7))
    data[1] = 2.0  # a constant image: standardizes to 0, not NaN
    np.save(tmp_path / "x.npy", data)
    doc = {"name": "z", "stages": [
        {"id": "x", "op": "read", "path": "x.npy", "chunks": [1, 8, 7]},
        {"id": "z", "op": "zscore", "input": "x", "axis": [1, 2], "ddof": 1},
        {"id": "w", "op": "write", "input": "z", "path": "z.npy"}]}
    result = pipeline.run(pipeline.load(doc, base_dir=tmp_path), client=session.client,
                          output_dir=tmp_path / "out")
    std = data.std(axis=(1, 2), keepdims=True, ddof=1)
    want = (data - data.mean(axis=(1, 2), keepdims=True)) / np.where(std == 0, 1, std)
    np.testing.assert_allclose(result.values["w"], want, atol=1e-12)
    assert not np.isnan(result.values["w"]).any()


def test_plugin_ops_validate_and_advise(examples, tmp_path, capsys):
    wf = write(tmp_path, """
        name: p
        stages:
          - {id: x, op: random, shape: [64, 32], seed: 1}
          - {id: z, op: zscore, input: x, axis: 1}
          - {id: w, op: write, input: z, path: z.npy}
    """)
    assert main(["validate", wf]) == 0
    assert "z  zscore(x) -> 64x32 float64" in capsys.readouterr().out
    assert main(["advise", wf]) == 0
    assert "zscore" in capsys.readouterr().out


def test_a_broken_plugin_is_named_not_fatal(examples, tmp_path, monkeypatch, capsys):
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\n"
                                   "Version: 1.0\n")
    (dist / "entry_points.txt").write_text("[pipeline.ops]\nbroken = gone_module.ops\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_loaded", False)
    monkeypatch.setattr(plugins, "FAILED", {})
    assert main(["ops"]) == 0
    captured = capsys.readouterr()
    assert "  zscore " in captured.out  # the good plugin still loads
    assert captured.err.strip() == ("warning: plugin 'broken' failed to load: "
                                    "gone_module.ops: ModuleNotFoundError: No module named "
                                    "'gone_module'")
    assert main(["ops", "tilez"]) == 2
    assert "plugin 'broken' failed to load" in capsys.readouterr().err


def test_a_plugin_cannot_replace_a_built_in_op():
    with pytest.raises(ValueError, match="op 'fft' is already registered by "
                                         "pipeline.ops.arrays"):
        @registry.op("fft", family="array")
        def fft(ctx, x):
            return x


def _reference_classes(images: np.ndarray, tile: int) -> np.ndarray:
    """The example's network in NumPy / SciPy: Sobel correlation with zero padding per
    tile, per-tile mean and mean gradient magnitude, linear head, softmax."""
    from scipy.signal import correlate2d

    from pipeline_examples.tiles import HEAD_BIAS, HEAD_WEIGHT, SOBEL_X

    sx = np.array(SOBEL_X)
    n, h, w = images.shape
    out = np.empty((n, h // tile, w // tile, 3))
    for i in range(n):
        for r in range(h // tile):
            for c in range(w // tile):
                t = images[i, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile].astype(float)
                gx = correlate2d(t, sx, mode="same")
                gy = correlate2d(t, sx.T, mode="same")
                features = np.array([t.mean(), np.hypot(gx, gy).mean()])
                logits = np.array(HEAD_WEIGHT) @ features + np.array(HEAD_BIAS)
                e = np.exp(logits - logits.max())
                out[i, r, c] = e / e.sum()
    return out


def test_pytorch_tile_inference_example_against_scipy(examples, session, tmp_path, capsys):
    pytest.importorskip("torch")
    wf = pipeline.load(EXAMPLE, {**SMALL, "backend": "cpu"}, output_dir=tmp_path / "out",
                       trust_workflow=True)
    lazy = pipeline.build(wf, client=session.client)
    images, normalized = session.client.compute([lazy["images"], lazy["normalized"]], sync=True)
    want_norm = (images - images.mean(axis=(1, 2), keepdims=True)) \
        / images.std(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(normalized, want_norm, rtol=1e-4, atol=1e-5)
    overrides = [a for k, v in SMALL.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    assert main(["run", str(EXAMPLE), "--trust-workflow", *overrides, "--backend", "cpu",
                 "--address", session.address, "--output-dir", str(tmp_path / "out")]) == 0
    table = capsys.readouterr().out
    assert "classes       map_blocks" in table  # timed and shown like any other stage
    got = np.load(tmp_path / "out" / "tile_classes.npy")
    assert got.shape == (2, 4, 6, 3) and got.dtype == np.float32
    np.testing.assert_allclose(got, _reference_classes(normalized, 32), rtol=1e-4, atol=1e-6)
    share = json.loads((tmp_path / "out" / "class_share.json").read_text())
    np.testing.assert_allclose(share, got.mean(axis=(0, 1, 2)), rtol=1e-5)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    stage = next(s for s in report["stages"] if s["id"] == "classes")
    assert stage["tasks"] >= 4 and stage["compute_s"] > 0


def test_torch_shares_memory_with_the_chunks(examples):
    torch = pytest.importorskip("torch")
    from pipeline_examples.tiles import from_tensor, to_tensor

    block = np.random.default_rng().standard_normal((2, 8, 8)).astype(np.float32)
    tensor = to_tensor(block)
    assert tensor.data_ptr() == block.ctypes.data  # zero-copy in
    back = from_tensor(tensor, like=block)
    assert isinstance(back, np.ndarray) and back.ctypes.data == block.ctypes.data
    assert isinstance(tensor, torch.Tensor)


def test_weights_file_is_loaded(examples, tmp_path):
    torch = pytest.importorskip("torch")
    from pipeline_examples import tiles

    net = tiles.tilenet_class()()
    with torch.no_grad():
        net.head.bias[:] = torch.tensor([5.0, -5.0, 0.0])
    torch.save(net.state_dict(), tmp_path / "w.pt")
    block = np.random.default_rng().uniform(0, 1, (1, 64, 64)).astype(np.float32)
    default = tiles.classify(block, tile=32)
    loaded = tiles.classify(block, tile=32, weights=str(tmp_path / "w.pt"))
    assert loaded.shape == default.shape == (1, 2, 2, 3)
    assert (loaded[..., 0] > default[..., 0]).all()  # the bias moved it to "dark"


def test_cupy_has_the_names_the_example_uses():
    """What ``import cupy`` gives here: the real wheel, or in the suite the stand-in,
    whose names tests/test_cupy_standin.py holds against the real wheel's."""
    cupy = pytest.importorskip("cupy")
    assert callable(cupy.from_dlpack) and hasattr(cupy.ndarray, "__dlpack__")
