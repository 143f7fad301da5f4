import json
import math
import re
import textwrap

import numpy as np
import pytest

from pipeline import advise, backends, ops, plan, runner, spec
from pipeline.advise import calibrate, costs, render, sample
from pipeline.advise.calibrate import Rates
from pipeline.cli import main
from tests.conftest import REPO

WORKFLOWS = sorted((REPO / "workflows").glob("*.yaml"))
RATES = Rates({k: 1e-9 for k in calibrate.UNITS}, "a test's")


def build(tmp_path, stages):
    path = tmp_path / "wf.yaml"
    path.write_text("name: adv\nstages:\n" + textwrap.indent(textwrap.dedent(stages), "  "))
    p = plan.build(spec.load(path))
    return p, runner.build(p, backends.CPU, tmp_path / "staging")


def by_stage(estimates):
    return {e.stage: e for e in estimates}


def units(tmp_path, stages, stage):
    p, built = build(tmp_path, stages)
    view = next(costs.View(ps.info.name, dict(ps.params), built.values.get(ps.id),
                           [built.values[r] for _, r in ps.stage.inputs],
                           [n for n, _ in ps.stage.inputs], [None], tmp_path)
                for ps in p.stages if ps.id == stage)
    return costs.work(view).units


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
    est = by_stage(advise.estimate(p, built, RATES))
    assert est["c"].flops == 2 * 300 * 100 * 200
    assert est["c"].bytes == (300 * 200 + 200 * 100 + 300 * 100) * 4
    assert est["f"].flops == pytest.approx(5 * 200 * np.log2(200) * 300)
    assert est["e"].flops == 3 * 300 * 100  # sqrt, *, +
    assert est["w"].d2h == 300 * 100 * 4 and est["w"].flops == 0
    assert est["a"].h2d == 0  # generated on the device


def test_stencil_counts_every_step_and_the_halo(tmp_path):
    """heat_diffusion's 1000 steps were once priced as one (0.21 s for 64 s of work)."""
    def stencil_units(steps, chunks):
        return units(tmp_path, f"""
        - {{id: g, op: random, shape: [512, 512], chunks: {chunks}}}
        - {{id: t, op: stencil, input: g, alpha: 0.2, steps: {steps}, halo: 8}}
        - {{id: w, op: write, input: t, path: t.npy}}
        """, "t")["stencil"]

    one_chunk = stencil_units(100, "[512, 512]")
    assert one_chunk == 512 * 512 * 100
    assert stencil_units(1000, "[512, 512]") == 10 * one_chunk
    # 4 x 4 chunks: each inner edge borrows 8 cells per side, on both axes
    assert stencil_units(100, "[128, 128]") == pytest.approx(one_chunk * (1 + 2 * 8 * 3 / 512)
                                                             ** 2)


def test_expressions_count_array_operations_only():
    sizes = {"z": 1000.0, "j": 10.0}
    assert costs.expr_units("10 * z * 0.96**j", sizes) == (2000.0, 10.0)
    assert costs.expr_units("s0 * exp((r - sigma**2 / 2) * t + sigma * sqrt(t) * z)",
                            {"z": 100.0}) == (300.0, 100.0)  # *, +, s0 *; exp
    assert costs.expr_units("real(z)**2 + imag(z)**2", {"z": 50.0}) == (150.0, 0.0)
    assert costs.expr_units("where(l >= v, l, 0)", {"l": 7.0, "v": 2.0}) == (14.0, 0.0)


def test_reductions_tables_and_every_shipped_op_are_priced(tmp_path):
    p, built = build(tmp_path, """
    - {id: a, op: random, shape: [1000, 100]}
    - {id: m, op: reduce, input: a, how: mean, axis: 0}
    - {id: s, op: reduce, input: a, how: std}
    - {id: q, op: quantile, input: a, q: 0.5, axis: 0}
    - {id: t, op: random_table, rows: 100000, partitions: 4, seed: 0,
       columns: {k: {keys: 10}, x: {distribution: normal}}}
    - {id: f, op: filter, input: t, expr: "x > 0"}
    - {id: g, op: groupby, input: f, by: k, agg: {x: [mean, max]}}
    - {id: w1, op: write, input: m, path: m.npy}
    - {id: w2, op: write, input: s, path: s.json}
    - {id: w3, op: write, input: q, path: q.npy}
    - {id: w4, op: write, input: g, path: g.parquet}
    """)
    est = by_stage(advise.estimate(p, built, RATES))
    assert est["m"].compute_s == pytest.approx(1000 * 100 * 1e-9)
    assert est["s"].compute_s == pytest.approx(4 * est["m"].compute_s)
    for sid in ("t", "f", "g"):  # tables once cost 0 B and 0 GFLOP
        assert est[sid].compute_s > 0 and est[sid].bytes > 0 and est[sid].flops > 0
    assert est["g"].compute_s > 100000 * 2 * 1e-9  # rows x aggregates
    shipped = {ps["op"] for path in WORKFLOWS
               for ps in spec.parse_yaml(path.read_text())["stages"]}
    assert shipped <= set(costs.COSTS)
    assert set(ops.catalogue()) <= set(costs.COSTS)


def test_an_op_without_a_model_is_priced_as_a_copy_and_says_so():
    w = costs.work(costs.View("third_party", {}, None, [], [], [], REPO))
    assert w.units == {} and "no cost model for op 'third_party'" in w.notes[0]


def test_prices_are_linear_in_the_calibrated_rates(tmp_path):
    p, built = build(tmp_path, """
    - {id: a, op: random, shape: [2000, 500]}
    - {id: e, op: elementwise, inputs: {x: a}, expr: "exp(x) + 1"}
    - {id: w, op: write, input: e, path: e.npy}
    """)
    base = by_stage(advise.estimate(p, built, RATES))["e"].compute_s
    doubled = Rates({**RATES.seconds, "transcendental": 3e-9}, "x")
    assert by_stage(advise.estimate(p, built, doubled))["e"].compute_s == \
        pytest.approx(base * 2)  # 1e6 * (1 + 1) ns -> 1e6 * (3 + 1) ns


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
    est = by_stage(advise.estimate(p, built, calibrate.load(calibrate.BUILTIN)))
    assert est["mm"].verdict == "GPU-worthy" and "compute-bound" in est["mm"].reasons[-1]
    assert est["r"].verdict == "transfer-bound" and est["r"].h2d == 4096 * 8192 * 4
    assert est["w"].verdict == "too small"
    assert est["w2"].verdict == "transfer-bound" and est["w2"].d2h == 4096 * 8192 * 4


def test_measure_samples_within_the_budget(tmp_path):
    """Each sample's prediction is the stage's estimate times the share it runs (never
    more than the whole stage); a stage whose sample needs the whole input (a reduction
    over the chunked axis) is left out when the budget is small, and says why."""
    p, built = build(tmp_path, """
    - {id: a, op: random, shape: [4000, 64], chunks: [1000, 64]}
    - {id: s, op: rfft, input: a, axis: 1}
    - {id: m, op: reduce, input: s, how: sum, axis: 1}
    - {id: total, op: reduce, input: m, how: sum, axis: 0}
    - {id: w, op: write, input: total, path: m.npy}
    """)
    rates = calibrate.load(calibrate.BUILTIN)
    estimates = advise.estimate(p, built, rates)
    whole = {e.stage: e.compute_s for e in estimates}
    budget = 2 * 0.3 * sum(whole.values())  # a third of the run, both passes
    plans, skipped = sample.measure(p, built, backends.CPU, estimates, budget_s=budget)
    assert set(plans) == {"a", "s", "m"} and set(skipped) == {"total"}
    assert "needs 100% of its tasks" in skipped["total"]
    for stage, plan_ in plans.items():
        assert plan_.share == 0.25  # one row chunk of four
        assert plan_.predicted_s == pytest.approx(whole[stage] * 0.25)
        assert plan_.measured_s > 0
    assert 2 * sum(x.predicted_s for x in plans.values()) <= budget


def test_measure_cuts_the_sources_finer_to_stay_within_the_budget(tmp_path):
    """A run of 4 big chunks: one chunk is a quarter of the run, so the samples come from
    the workflow built again with the source's rows cut finer (a --set override)."""
    stages = """
    - {id: a, op: random, shape: [40000, 256], chunks: [10000, 256]}
    - {id: s, op: rfft, input: a, axis: 1}
    - {id: p, op: elementwise, inputs: {z: s}, expr: "real(z)**2 + imag(z)**2"}
    - {id: w, op: write, input: p, path: p.npy}
    """
    rates = calibrate.load(calibrate.BUILTIN)
    p, built = build(tmp_path, stages)
    estimates = advise.estimate(p, built, rates)
    asked = []

    def rebuild(extra):
        asked.extend(extra)
        path = tmp_path / "wf.yaml"
        again = plan.build(spec.load(path, extra))
        rebuilt = runner.build(again, backends.CPU, tmp_path / "staging")
        return again, rebuilt, advise.estimate(again, rebuilt, rates)

    budget = sum(e.compute_s for e in estimates) / 10
    plans, skipped = sample.measure(p, built, backends.CPU, estimates, rebuild, budget)
    assert len(asked) == 1 and asked[0].startswith("stages.a.chunks=[")
    rows = int(asked[0].split("[")[1].split(",")[0])
    assert rows < 10000 and asked[0].endswith(",256]")
    assert set(plans) == {"a", "s", "p"} and not skipped
    whole = {e.stage: e.compute_s for e in estimates}
    share = 1 / math.ceil(40000 / rows)  # one chunk of the finer source
    for stage, plan_ in plans.items():
        assert plan_.share == pytest.approx(share)
        assert plan_.predicted_s == pytest.approx(whole[stage] * share)
        assert plan_.measured_s > 0
    assert 2 * sum(x.predicted_s for x in plans.values()) <= budget


def test_measure_of_a_tables_only_workflow_says_tables_are_not_sampled(tmp_path):
    p, built = build(tmp_path, """
    - {id: t, op: random_table, rows: 1000, partitions: 2, seed: 0,
       columns: {k: {keys: 10}, x: {distribution: normal}}}
    - {id: g, op: groupby, input: t, by: k, agg: {x: [mean]}}
    - {id: w, op: write, input: g, path: g.parquet}
    """)
    estimates = advise.estimate(p, built, RATES)
    plans, skipped = sample.measure(p, built, backends.CPU, estimates)
    assert plans == {} and set(skipped) == {"t", "g"}
    assert all("table stages are not sampled" in why for why in skipped.values())


def test_calibration_measures_every_kernel_and_round_trips(tmp_path, session, monkeypatch):
    monkeypatch.setattr(calibrate, "N", 1 << 16)  # small and quick: only the plumbing
    monkeypatch.setattr(calibrate, "ROWS", 1 << 12)
    rates = calibrate.calibrate(session.client)
    assert set(rates.seconds) == set(calibrate.UNITS)
    assert all(0 < v < 1 for v in rates.seconds.values())
    assert "1 workers at once; load average" in rates.source
    saved = calibrate.save(rates, tmp_path / "r.json")
    assert calibrate.load(saved) == rates
    doc = json.loads(saved.read_text())
    doc["seconds"].pop("gemm")
    saved.write_text(json.dumps(doc))
    with pytest.raises(Exception, match="not a rates file"):
        calibrate.load(saved)


def test_builtin_rates_cover_every_kernel():
    builtin = calibrate.load(calibrate.BUILTIN)
    assert set(builtin.seconds) == set(calibrate.UNITS)
    assert "calibrated" in builtin.source and "load average" in builtin.source


def test_cli_states_its_assumptions(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: c\nstages:\n - {id: a, op: random, shape: [200, 100]}\n"
                  " - {id: w, op: write, input: a, path: a.npy}\n")
    assert main(["advise", str(wf), "--measure"]) == 0
    out = capsys.readouterr().out
    assert "compute s" in out and "cpu meas s" in out and "a: too small" in out
    assert "workflow: est." in out and "not worth a GPU" in out
    assert re.search(r"- CPU: rates per kernel built in, calibrated .* load average", out)
    assert "GPU: nominal, not measured" in out
    # a damaged rates file: one line, exit 2
    bad = tmp_path / "cache" / "pipeline" / "advise-rates.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{")
    assert main(["advise", str(wf)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "advise --calibrate" in err and err.count("\n") == 1
    assert main(["advise"]) == 2
    assert "give a WORKFLOW, or --calibrate" in capsys.readouterr().err


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_shipped_workflow_is_advised(path, tmp_path):
    p = plan.build(spec.load(path, ["backend=cpu"], output_dir=tmp_path))
    built = runner.build(p, backends.CPU, tmp_path / "staging")
    estimates = advise.estimate(p, built, calibrate.load(calibrate.BUILTIN))
    assert sum(e.compute_s for e in estimates) > 0.1  # real work, not a few microseconds
    assert not any("no cost model" in n for e in estimates for n in e.notes)
    text = render.render(estimates, calibrate.load(calibrate.BUILTIN))
    assert "assumptions:" in text


def test_docs_table_lists_every_shipped_workflow():
    doc = (REPO / "docs" / "advise.md").read_text()
    for path in WORKFLOWS:
        assert re.search(rf"^\| `{path.stem}` \|", doc, re.M), path.stem
