import textwrap

import numpy as np
import pytest

from pipeline import advise, backends, plan, runner, spec
from pipeline.cli import main


def build(tmp_path, stages):
    path = tmp_path / "wf.yaml"
    path.write_text("name: adv\nstages:\n" + textwrap.indent(textwrap.dedent(stages), "  "))
    p = plan.build(spec.load(path))
    return p, runner.build(p, backends.CPU, tmp_path / "staging")


def by_stage(estimates):
    return {e.stage: e for e in estimates}


def test_flop_and_byte_counts(tmp_path):
    p, built = build(tmp_path, """
    - {id: a, op: random, shape: [300, 200], dtype: float32}
    - {id: b, op: random, shape: [200, 100], dtype: float32}
    - {id: c, op: matmul, inputs: [a, b]}
    - {id: f, op: fft, input: a, axis: 1}
    - {id: e, op: elementwise, inputs: {x: c}, expr: "sqrt(x) * 2 + 1"}
    - {id: w, op: write, input: e, path: e.npy}
    - {id: w2, op: write, input: f, path: f.npy}
    """)
    est = by_stage(advise.estimate(p, built))
    assert est["c"].flops == 2 * 300 * 100 * 200
    assert est["c"].bytes == (300 * 200 + 200 * 100 + 300 * 100) * 4
    assert est["f"].flops == pytest.approx(5 * 200 * np.log2(200) * 300)
    assert est["e"].flops == 3 * 300 * 100  # sqrt, *, +
    assert est["w"].d2h == 300 * 100 * 4 and est["w"].flops == 0
    assert est["a"].h2d == 0  # generated on the device


def test_verdicts(tmp_path):
    np.save(tmp_path / "big.npy", np.zeros((4096, 8192), dtype=np.float32))  # 128 MiB
    p, built = build(tmp_path, """
    - {id: a, op: random, shape: [8192, 8192], dtype: float32}
    - {id: mm, op: matmul, inputs: [a, a]}
    - {id: tiny, op: reduce, input: mm, how: sum}
    - {id: r, op: read, path: big.npy}
    - {id: light, op: elementwise, inputs: {x: r}, expr: "x + 1"}
    - {id: w, op: write, input: tiny, path: t.json}
    - {id: w2, op: write, input: light, path: l.npy}
    """)
    est = by_stage(advise.estimate(p, built))
    assert est["mm"].verdict == "GPU-worthy" and "compute-bound" in est["mm"].reasons[-1]
    assert est["r"].verdict == "transfer-bound" and est["r"].h2d == 4096 * 8192 * 4
    assert est["w"].verdict == "too small"
    assert est["w2"].verdict == "transfer-bound" and est["w2"].d2h == 4096 * 8192 * 4
    assert est["light"].verdict == "GPU-worthy"  # once the data is on the device


def test_measure_times_each_stage_sample(tmp_path):
    p, built = build(tmp_path, """
    - {id: a, op: random, shape: [4000, 64], chunks: [1000, 64]}
    - {id: s, op: rfft, input: a, axis: 1}
    - {id: m, op: reduce, input: s, how: sum, axis: 1}
    - {id: w, op: write, input: m, path: m.npy}
    """)
    times = advise.measure(p, built, backends.CPU)
    assert set(times) == {"a", "s", "m"}
    assert all(t > 0 for t, _ in times.values())
    assert [times[s][1] for s in "asm"] == [0.25, 0.25, 0.25]  # one row chunk of four


def test_cli(capsys, tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: c\nstages:\n - {id: a, op: random, shape: [200, 100]}\n"
                  " - {id: w, op: write, input: a, path: a.npy}\n")
    assert main(["advise", str(wf), "--measure"]) == 0
    out = capsys.readouterr().out
    assert "cpu sample meas s" in out and "a: too small" in out
    assert "workflow: est." in out and "not worth a GPU" in out
