"""advise's predictions against measured runs, for every shipped workflow.

    python benchmarks/advise_table.py                  # calibrate, run all, write docs/advise.md
    python benchmarks/advise_table.py --workflows pca,spectrum --no-doc
    python benchmarks/advise_table.py --builtin        # also make these rates advise's built-in ones

Calibrates this host's CPU rates (as ``python -m pipeline advise --calibrate``; with
``--calibrate-each`` again before every workflow, so that on a shared host the rates and
the run see the same load), then for each workflow: advise's predicted compute (nothing
run), then the workflow run at its default size on a fresh LocalCluster (CPU backend, as
``run`` starts it), its compute read back from report.json two ways: ``cpu_s``, the CPU
seconds of the stages' code, and ``compute_s``, its wall time, which also holds the time
a task waited for a core while other programs ran. Writes the table into docs/advise.md
with the load averages.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare import loadavg, machine, source_state, write_section  # noqa: E402

DOC = ROOT / "docs" / "advise.md"
MARKS = ("<!-- advise:table:start -->", "<!-- advise:table:end -->")
DOC_HEAD = """# advise: predicted against measured compute

`python -m pipeline advise WORKFLOW` predicts each stage's compute (CPU seconds summed
over the worker threads, the quantity report.json calls `compute_s`) from the shapes and
dtypes alone, pricing the work with this host's calibrated rates. The table below, made
by `python benchmarks/advise_table.py`, compares the prediction with real runs of every
shipped workflow at its default size.
"""
DETAIL_SHARE = 0.05  # stages listed per workflow: those with at least this share


def workflows() -> list[str]:
    return sorted(p.stem for p in (ROOT / "workflows").glob("*.yaml"))


def calibrate(builtin: bool):
    from pipeline.advise import calibrate as cal

    rates = cal.calibrate_here()
    cal.save(rates)
    if builtin:
        cal.save(rates, cal.BUILTIN)
    return rates


def predict(name: str, rates) -> dict:
    """advise's prediction per stage, and what ``advise --measure`` adds to it: the CPU
    seconds of this process while it samples (on the synchronous scheduler, here)."""
    from pipeline import advise, plan, spec

    def load(extra=()):
        return plan.build(spec.load(ROOT / "workflows" / f"{name}.yaml",
                                    ["backend=cpu", *extra], output_dir=tmp))

    with tempfile.TemporaryDirectory() as tmp:
        estimates, _ = advise.run(load, rates=rates)
        t0 = time.process_time()
        _, measured = advise.run(load, measure=True, rates=rates)
        measure_s = time.process_time() - t0
    return {"stage_pred": {e.stage: e.compute_s for e in estimates},
            "ops": {e.stage: e.op for e in estimates}, "measure_s": measure_s,
            "sampled": len(measured["cpu"][0])}


def run(name: str, out: Path) -> dict:
    """Run the workflow; its wall time, and (CPU, compute) seconds per stage and in all,
    as report.json has them (``cpu_s``, ``compute_s``: exact per stage, fused or not)."""
    from pipeline import cluster, plan, runner, spec

    wf = spec.load(ROOT / "workflows" / f"{name}.yaml", ["backend=cpu"], output_dir=out)
    p = plan.build(wf)
    with cluster.connect(wf.cluster, "cpu", dashboard_address=None) as session:
        doc = runner.run(p, session.backend, session)
    totals = doc["totals"]
    return {"wall": totals["wall_s"], "total": (totals["cpu_s"], totals["compute_s"]),
            "stages": {s["id"]: (s["cpu_s"], s["compute_s"]) for s in doc["stages"]
                       if s.get("start") is not None}}


def render(rows: list[dict], info: dict, loads: tuple[str, str], cmd: str,
           rates_source: str) -> str:
    lines = [MARKS[0], "", f"Measured {time.strftime('%Y-%m-%d %H:%M')} with `{cmd}` "
             f"({source_state()}), on {info['cores']} cores ({info['cpu']}), "
             f"{info['memory_bytes'] / 2**30:.1f} GiB; load average {loads[0]} before, "
             f"{loads[1]} after. Rates: {rates_source}.", "",
             "| workflow | predicted compute s | measured CPU s | predicted / CPU | "
             "measured compute s | predicted / compute | run wall s | --measure CPU s "
             "(of the run's CPU) | load during |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        cpu, compute = r["total"]
        lines.append(f"| `{r['name']}` | {r['predicted']:.1f} | {cpu:.1f} | "
                     f"{r['predicted'] / cpu:.2f} | {compute:.1f} | "
                     f"{r['predicted'] / compute:.2f} | {r['wall']:.1f} | "
                     f"{r['measure_s']:.1f} ({r['measure_s'] / cpu:.0%}, "
                     f"{r['sampled']} stages) | {r['load']} |")
    ratios = [r["predicted"] / r["total"][0] for r in rows]
    lines += ["", f"Predicted / measured CPU: {min(ratios):.2f} to {max(ratios):.2f} "
              f"({sum(0.5 <= x <= 2 for x in ratios)} of {len(ratios)} within 2x).", "",
              "Per stage (the stages with at least 5% of the prediction or of the "
              "measurement; `-`: no task of its own):", ""]
    for r in rows:
        cpu_total = r["total"][0]
        shown = [s for s, pred in r["stage_pred"].items()
                 if pred >= DETAIL_SHARE * r["predicted"]
                 or r["stages"].get(s, (0, 0))[0] >= DETAIL_SHARE * cpu_total]
        cells = []
        for s in shown:
            measured = r["stages"].get(s)
            meas = "-" if measured is None else f"{measured[0]:.1f}"
            cells.append(f"{s} ({r['ops'][s]}) {r['stage_pred'][s]:.1f} / {meas}")
        lines.append(f"- `{r['name']}`, predicted / measured CPU s: " + "; ".join(cells))
    lines += ["", MARKS[1]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workflows", default="", help="comma list (default: all shipped)")
    ap.add_argument("--no-doc", action="store_true", help="print only")
    ap.add_argument("--calibrate-each", action="store_true",
                    help="re-measure the rates before each workflow (a shared host)")
    ap.add_argument("--builtin", action="store_true",
                    help="save the first calibration as advise's built-in rates")
    args = ap.parse_args(argv)
    names = [n for n in args.workflows.split(",") if n] or workflows()
    loads = [loadavg()]
    rates = calibrate(args.builtin)
    print(f"rates: {rates.source}", flush=True)
    rows = []
    for i, name in enumerate(names):
        if args.calibrate_each and i:
            rates = calibrate(False)
        predicted = predict(name, rates)
        before = loadavg().split()[0]
        with tempfile.TemporaryDirectory(prefix=f"advise-{name}-") as tmp:
            measured = run(name, Path(tmp) / "run")
        row = {"name": name, "predicted": sum(predicted["stage_pred"].values()),
               "load": f"{before} -> {loadavg().split()[0]}", **predicted, **measured}
        rows.append(row)
        print(f"{name}: predicted {row['predicted']:.1f} s, measured CPU "
              f"{row['total'][0]:.1f} s, compute {row['total'][1]:.1f} s "
              f"(ratio {row['predicted'] / row['total'][0]:.2f}), load {row['load']}",
              flush=True)
    loads.append(loadavg())
    source = rates.source + (" (re-measured before each workflow)" if args.calibrate_each
                             else "")
    cmd = "python benchmarks/advise_table.py" + (" " + " ".join(argv or sys.argv[1:])
                                                 if (argv or sys.argv[1:]) else "")
    section = render(rows, machine(), tuple(loads), cmd, source)
    print(section)
    if not args.no_doc:
        if not DOC.exists():
            DOC.write_text(DOC_HEAD)
        write_section(MARKS, section, DOC)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
