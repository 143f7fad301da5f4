"""Transfer accounting, proven without a GPU: a NumPy backend whose host<->device copies
are real copies, counted like the GPU backend's. It shows where the runner puts copies."""

import textwrap

import numpy as np
from pipeline import backends, plan, runner, spec

# Host and "device" are both NumPy here, but every crossing really copies and is counted.
COPYING = backends.Backend("cpu-copying", "numpy", "pandas", copies=True)


def run(tmp_path, session, text):
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text))
    p = plan.build(spec.load(path, output_dir=tmp_path / "out"))
    doc = runner.run(p, COPYING, session)
    return {s["id"]: s for s in doc["stages"]}, doc


def test_generated_data_never_crosses_until_the_sink(tmp_path, session):
    stages, doc = run(tmp_path, session, """
        name: spectrum
        stages:
          - {id: signal, op: random, shape: [512, 64], chunks: [100, 64], dtype: float32}
          - {id: spectrum, op: rfft, input: signal, axis: 1}
          - {id: power, op: elementwise, inputs: {z: spectrum}, expr: "real(z)**2 + imag(z)**2"}
          - {id: mean_power, op: reduce, input: power, how: mean, axis: 0}
          - {id: save, op: write, input: mean_power, path: m.npy}
    """)
    assert doc["totals"]["h2d_bytes"] == 0
    assert stages["save"]["d2h_bytes"] == 33 * 4  # only the final float32 vector
    assert doc["totals"]["d2h_bytes"] == 33 * 4


def test_read_moves_each_byte_in_once_and_the_written_bytes_out(tmp_path, session):
    data = np.random.default_rng().standard_normal((300, 40))
    np.save(tmp_path / "x.npy", data)
    stages, doc = run(tmp_path, session, """
        name: copy
        stages:
          - {id: x, op: read, path: x.npy, chunks: [64, 40]}
          - {id: y, op: elementwise, inputs: {a: x}, expr: "a * 2"}
          - {id: s, op: reduce, input: y, how: sum, axis: 1}
          - {id: w1, op: write, input: y, path: y.npy}
          - {id: w2, op: write, input: s, path: s.json}
    """)
    assert stages["x"]["h2d_bytes"] == data.nbytes  # y feeds two sinks; x is read once
    assert doc["totals"]["h2d_bytes"] == data.nbytes
    assert stages["w1"]["d2h_bytes"] == data.nbytes
    assert stages["w2"]["d2h_bytes"] == 300 * 8
    assert stages["x"]["h2d_s"] > 0
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "y.npy"), data * 2)
