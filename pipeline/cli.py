"""``python -m pipeline``: argument parsing, printing and exit codes; no logic of its own.

Exit codes: 0 success; 1 the run failed; 2 bad input (one line, no traceback unless
``--verbose``).
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from pipeline import ctrl_c
from pipeline.errors import InputError, PipelineError, one_line


class _Parser(argparse.ArgumentParser):
    """argparse with the one-line error format (its own prints the usage first)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m pipeline",
                description="Dask-on-GPU pipelines from a workflow file.")
    p.add_argument("--verbose", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def workflow_args(sp, optional=False):
        sp.add_argument("workflow", nargs="?" if optional else None,
                        help="the workflow YAML file")
        sp.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="K=V", help="override a field (YAML value), repeatable")
        sp.add_argument("--backend", choices=("auto", "cpu", "gpu"))
        sp.add_argument("--trust-workflow", action="store_true",
                        help="let the file set cluster.address, cluster.security and a "
                             "dashboard open to other machines (README: trust)")
        sp.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks")

    run = sub.add_parser("run", help="run a workflow")
    workflow_args(run)
    run.add_argument("--address", help="use the existing Dask scheduler at ADDR")
    run.add_argument("--output-dir", help="run folder (default: the workflow's output_dir)")
    run.add_argument("--no-dashboard", action="store_true", help="do not start the dashboard")
    run.add_argument("--dashboard-address", help="e.g. 127.0.0.1:8787")
    run.add_argument("--quiet", action="store_true", help="print only errors and the summary")
    run.add_argument("--cache", metavar="DIR",
                     help="keep every stage's result in DIR and reuse it in later runs")
    run.add_argument("--no-fuse", action="store_true",
                     help="keep one task per stage per chunk (no low-level task fusion); "
                          "per-stage figures are exact either way")
    run.add_argument("--no-performance-report", action="store_true",
                     help="skip Dask's performance report (performance-report.html): "
                          "about 1 to 2 s less per run on 2 cores")

    validate = sub.add_parser("validate", help="check a workflow; print its stage DAG")
    workflow_args(validate)

    advise = sub.add_parser("advise", help="per stage: predicted compute; is it worth a GPU?")
    workflow_args(advise, optional=True)
    advise.add_argument("--measure", action="store_true",
                        help="also time a sample chunk of each stage on the backends present")
    advise.add_argument("--calibrate", action="store_true",
                        help="first measure this host's CPU rates (a LocalCluster, 10-20 s) "
                             "and save them for later advice")

    bench = sub.add_parser("bench", help="time workloads: pipeline vs hand-written Dask vs "
                                         "NumPy/pandas (needs the source tree's benchmarks/)")
    bench.add_argument("--size", type=float, default=1024, help="input MiB per workload")
    bench.add_argument("--repeats", type=int, default=3, help="timed runs per side")
    bench.add_argument("--workloads", help="comma list (default: all)")
    bench.add_argument("--no-doc", action="store_true", help="print only; no docs, no charts")
    bench.add_argument("--scaling", action="store_true",
                       help="spectrum time vs input size and vs workers instead")
    bench.add_argument("--scaling-max", type=float, default=4096, help="largest size MiB")

    ops = sub.add_parser("ops", help="list the ops, or describe one")
    ops.add_argument("op", nargs="?")

    cache = sub.add_parser("cache", help="list or clear cached stage results")
    cache.add_argument("action", choices=("ls", "clear"))
    cache.add_argument("--cache", metavar="DIR",
                       help="the cache folder (default: $PIPELINE_CACHE_DIR or "
                            "~/.cache/pipeline)")

    schema = sub.add_parser("schema", help="print the JSON Schema of the workflow format "
                                           "(for editors: completion and checking)")
    schema.add_argument("-o", "--output", metavar="FILE", help="write it to FILE instead")

    compare = sub.add_parser("compare", help="stage-by-stage differences between two runs")
    compare.add_argument("run_a", metavar="RUN_A", help="a run folder or its report.json")
    compare.add_argument("run_b", metavar="RUN_B", nargs="?",
                         help="another run (default: RUN_A, compared with its newest "
                              "earlier run kept in RUN_A.history/)")

    doctor = sub.add_parser("doctor", help="check this machine for GPU runs: GPUs, driver, "
                                           "CUDA, libraries, and the fix for each problem")
    doctor.add_argument("--no-import", action="store_true",
                        help="skip test-importing the GPU libraries (done in a child process)")
    return p


def _version() -> str:
    from importlib import metadata

    from pipeline import __version__

    def installed(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    return (f"pipeline {__version__} (dask {installed('dask')}, "
            f"distributed {installed('distributed')}, Python {sys.version.split()[0]})")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        _refuse_empty(args)
        with ctrl_c.handled():
            return {"run": _run, "validate": _validate, "ops": _ops, "doctor": _doctor,
                    "advise": _advise, "bench": _bench, "cache": _cache, "schema": _schema,
                    "compare": _compare}[args.command](args)
    except PipelineError as e:
        if args.verbose:
            traceback.print_exc()
        print(e.line(), file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted (Ctrl-C); the run folder is left as it was", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as cat does
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # noqa: BLE001 - a bug of ours: still one line, never a trace
        if args.verbose:
            traceback.print_exc()
        print(f"error: internal error: {one_line(f'{type(e).__name__}: {e}')} (a bug in "
              "the pipeline; --verbose shows where, please report it)", file=sys.stderr)
        return 1


def _refuse_empty(args) -> None:
    """An empty argument (a script's unset "$OUT") is bad input, never "not given": an
    empty --output-dir would otherwise run into the workflow's own run folder."""
    for dest, value in vars(args).items():
        if value == "":
            option = dest.upper() if dest in ("workflow", "op", "run_a", "run_b") \
                else "--" + dest.replace("_", "-")
            raise InputError("empty", where=option, hint="give a value, or leave it out")


def _load(args, extra=()):
    from pipeline import plan

    return plan.build(_workflow(args, extra))


def _workflow(args, extra=()):
    from pipeline import api

    overrides = [*args.overrides, *extra]
    if args.backend:
        overrides.append(f"backend={args.backend}")
    return api.load(args.workflow, overrides, output_dir=getattr(args, "output_dir", None),
                    trust_workflow=args.trust_workflow)


def _validate(args) -> int:
    from pipeline import backends, runner, settings
    from pipeline.report import describe_output, human_bytes

    settings.check()  # "ok" means the run would start: a bad pipeline.* value would not
    p = _load(args)
    wf = p.workflow
    # Shapes and dtypes do not depend on the backend: check them on the CPU one.
    built = runner.build(p, backends.CPU, wf.output_dir / ".validate")
    print(f"workflow '{wf.name}': {len(p.stages)} stages, backend {wf.backend}"
          + (f" - {wf.description}" if wf.description else ""))
    width = max(len(s.id) for s in p.stages)
    for s in p.stages:
        source = ", ".join(s.upstream)
        head = f"  {s.id:<{width}}  {s.info.name}({source})"
        value = built.values.get(s.id)
        if value is None:
            print(f"{head} -> {s.params.get('path', '')}")
            continue
        info = runner.output_info(value)
        size = f" ({human_bytes(info['bytes'])})" if info.get("bytes") else ""
        print(f"{head} -> {describe_output(info)}{size}")
    for w in p.warnings:
        print(f"warning: {w}")
    print("ok")
    return 0


def _run(args) -> int:
    from pipeline import api
    from pipeline.report import table

    def echo(line: str) -> None:
        if line.startswith("warning: "):
            print(line, file=sys.stderr)
        elif not args.quiet:
            print(line)

    result = api.run(_workflow(args), address=args.address,
                     dashboard_address=None if args.no_dashboard
                     else ("keep" if args.dashboard_address is None
                           else args.dashboard_address),
                     progress=not args.quiet, cache=args.cache,
                     fuse=False if args.no_fuse else None,
                     performance_report=False if args.no_performance_report else None,
                     echo=echo)
    doc = result.report
    for lost in doc.get("lost_workers", ()):
        gone = "left" if lost["graceful"] else "was lost"
        print(f"warning: worker {lost['worker']} {gone} during the run; Dask recomputed "
              f"its {lost['tasks_running']} running and {lost['results_recomputed']} held "
              f"task(s) elsewhere", file=sys.stderr)
    print(table(doc["stages"], doc["totals"]))
    print(f"run folder: {result.run_folder}")
    return 0


def _advise(args) -> int:
    from pipeline import advise
    from pipeline.advise import calibrate, render

    if args.calibrate:
        print(f"calibrated: {calibrate.save(calibrate.calibrate_here())}")
    if args.workflow is None:
        if not args.calibrate:
            raise InputError("give a WORKFLOW, or --calibrate", where="advise")
        return 0
    rates = calibrate.load()
    estimates, measured = advise.run(lambda extra=(): _load(args, extra),
                                     measure=args.measure, rates=rates)
    print(render.render(estimates, rates, measured))
    return 0


def _bench(args) -> int:
    # The harness is development tooling kept beside the package in the source tree
    # (benchmarks/ shares its helpers with compare.py); an installed copy has none.
    import importlib.util
    import math
    from pathlib import Path

    import pipeline

    for option, mib in (("--size", args.size), ("--scaling-max", args.scaling_max)):
        if not (math.isfinite(mib) and mib > 0):  # -1 and nan: internal errors before
            raise InputError(f"bad size {mib:g}", where=option, hint="MiB of input, above 0")
    path = Path(pipeline.__file__).resolve().parents[1] / "benchmarks" / "run.py"
    if not path.exists():
        raise InputError("benchmarks/run.py not found next to the package", where="bench",
                         hint="run it from a source checkout of the pipeline",
                         file=str(path.parent))
    spec = importlib.util.spec_from_file_location("pipeline_bench_run", path)
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    argv = ["--size", str(args.size), "--repeats", str(args.repeats),
            "--scaling-max", str(args.scaling_max)]
    argv += ["--workloads", args.workloads] if args.workloads else []
    argv += ["--no-doc"] * args.no_doc + ["--scaling"] * args.scaling
    return harness.main(argv)


def _ops(args) -> int:
    from pipeline import ops, optext
    from pipeline.ops import plugins

    if args.op:
        print(optext.describe(ops.get(args.op), plugins.origin))
        return 0
    print(optext.listing(ops.catalogue(), plugins.origin))
    for name, error in sorted(plugins.FAILED.items()):
        print(f"warning: plugin '{name}' failed to load: {error}", file=sys.stderr)
    return 0


def _cache(args) -> int:
    from pathlib import Path

    from pipeline import cache
    from pipeline.report import human_bytes

    store = cache.Store(Path(args.cache).expanduser() if args.cache else cache.default_dir())
    if args.action == "clear":
        count, freed = store.clear()
        print(f"removed {count} entries ({human_bytes(freed)}) from {store.root}")
        return 0
    found = store.list()
    print(f"{store.root}: {len(found)} entries, "
          f"{human_bytes(sum(int(m.get('bytes') or 0) for m in found))}")
    for m in found:
        what = m.get("problem") or (
            f"{m['workflow']}:{m['stage']} ({m['op']}) "
            + ("x".join(map(str, m["shape"])) + f" {m['dtype']}" if m["kind"] == "array"
               else f"{len(m['columns'])} columns"))
        print(f"  {m['key'][:12]}  {human_bytes(int(m.get('bytes') or 0)):>10}  "
              f"{m.get('created', '-'):<25}  {what}")
    return 0


def _schema(args) -> int:
    import json

    from pipeline import schema
    from pipeline.report import write_atomic

    text = json.dumps(schema.workflow_schema(), indent=2) + "\n"
    if not args.output:
        print(text, end="")
        return 0
    try:
        write_atomic(Path(args.output), text)
    except OSError as e:
        raise InputError(f"cannot write: {e.strerror or e}", file=args.output) from None
    print(f"wrote {args.output}")
    return 0


def _compare(args) -> int:
    from pipeline import compare

    run_a, run_b = args.run_a, args.run_b
    if run_b is None:
        run_a, run_b = compare.previous(args.run_a), args.run_a
    (file_a, doc_a), (file_b, doc_b) = compare.load(run_a), compare.load(run_b)
    print(compare.render(doc_a, doc_b, str(file_a.parent), str(file_b.parent)))
    return 0


def _doctor(args) -> int:
    from pipeline.gpu import doctor

    facts = doctor.gather(import_check=not args.no_import)
    print(doctor.render(facts, doctor.diagnose(facts)))
    return 0  # a report, not a check: problems are printed with their fixes
