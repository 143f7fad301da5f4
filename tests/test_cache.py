"""Cached stages: a downstream change reuses an upstream FFT, a changed parameter or input
file invalidates exactly what is below it, corrupt entries are recomputed, never used."""

import json

import numpy as np
import pandas as pd
import pytest

import pipeline
from pipeline.cache import Store
from pipeline.cli import main

SPECTRUM = {"name": "spec", "stages": [
    {"id": "x", "op": "read", "path": "x.npy", "chunks": [50, 16]},
    {"id": "spectrum", "op": "rfft", "input": "x", "axis": 1},
    {"id": "power", "op": "elementwise", "inputs": {"z": "spectrum"},
     "expr": "real(z)**2 + imag(z)**2"},
    {"id": "summary", "op": "reduce", "input": "power", "how": "mean", "axis": 0},
    {"id": "save", "op": "write", "input": "summary", "path": "summary.npy"}]}


@pytest.fixture(scope="module")
def client(cluster):
    from distributed import Client

    with Client(cluster.scheduler_address) as c:
        yield c


def run(client, tmp_path, doc=SPECTRUM, overrides=None, cache=None):
    wf = pipeline.load(doc, overrides, base_dir=tmp_path, output_dir=tmp_path / "out")
    result = pipeline.run(wf, client=client, cache=cache)
    return result, {s["id"]: s for s in result.report["stages"]}


def power(data):
    return np.abs(np.fft.rfft(data, axis=1)) ** 2


def test_a_downstream_change_reuses_the_upstream_fft(client, tmp_path, capsys):
    data = np.random.default_rng().standard_normal((120, 16))
    np.save(tmp_path / "x.npy", data)
    cache = tmp_path / "cache"
    first, stages = run(client, tmp_path, cache=cache)
    assert not any(s["cached"] for s in stages.values())
    np.testing.assert_allclose(first.values["save"], power(data).mean(axis=0))
    assert main(["cache", "ls", "--cache", str(cache)]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith(f"{cache}: 4 entries")
    assert "spec:spectrum (rfft) 120x9 complex128" in listing

    second, stages = run(client, tmp_path, overrides={"stages.summary.how": "max"},
                         cache=cache)
    np.testing.assert_allclose(second.values["save"], power(data).max(axis=0))
    assert stages["power"]["cached"] and not stages["summary"]["cached"]
    # above the cached stage nothing runs: the FFT is not recomputed
    assert not stages["spectrum"]["computed"] and stages["spectrum"]["tasks"] == 0
    assert not stages["x"]["computed"]
    assert stages["power"]["tasks"] > 0  # reading the entry

    third, stages = run(client, tmp_path, overrides={"stages.summary.how": "max"},
                        cache=cache)
    assert stages["summary"]["cached"] and not stages["power"]["computed"]
    np.testing.assert_array_equal(third.values["save"], second.values["save"])


def test_changes_invalidate_exactly_what_is_below(client, tmp_path):
    rng = np.random.default_rng()
    data = rng.standard_normal((90, 16))
    np.save(tmp_path / "x.npy", data)
    cache = tmp_path / "cache"
    run(client, tmp_path, cache=cache)
    expr = {"stages.power.expr": "abs(z)"}
    _, stages = run(client, tmp_path, overrides=expr, cache=cache)
    assert stages["spectrum"]["cached"] and not stages["x"]["computed"]
    assert not stages["power"]["cached"] and not stages["summary"]["cached"]
    new = rng.standard_normal((90, 16))
    np.save(tmp_path / "x.npy", new)  # a new file: size and mtime differ from the old
    result, stages = run(client, tmp_path, overrides=expr, cache=cache)
    assert not any(s["cached"] for s in stages.values())
    np.testing.assert_allclose(result.values["save"],
                               np.abs(np.fft.rfft(new, axis=1)).mean(axis=0))


def _entry(cache, stage):
    for manifest in (cache / "entries").glob("*/entry.json"):
        if json.loads(manifest.read_text())["stage"] == stage:
            return manifest.parent
    raise AssertionError(f"no entry for {stage}")


def _damage(entry, how: str) -> None:
    if how == "manifest":
        (entry / "entry.json").write_text("{not json")
        return
    chunk = max((f for f in entry.rglob("*") if f.is_file() and f.name != "entry.json"),
                key=lambda f: f.stat().st_size)
    raw = bytearray(chunk.read_bytes())
    if how == "flip":  # same size, one byte changed: only the CRC-32 can tell
        raw[len(raw) // 2] ^= 0xFF
    chunk.write_bytes(raw if how == "flip" else raw[:len(raw) // 2])


def test_corrupt_entries_are_recomputed_never_returned(client, tmp_path):
    data = np.random.default_rng().standard_normal((120, 16))
    np.save(tmp_path / "x.npy", data)
    cache = tmp_path / "cache"
    run(client, tmp_path, cache=cache)
    damaged = {"summary": "manifest", "power": "flip", "spectrum": "truncate"}
    entries = {stage: _entry(cache, stage) for stage in damaged}
    for stage, how in damaged.items():
        _damage(entries[stage], how)
    result, stages = run(client, tmp_path, cache=cache)
    assert [sid for sid, s in stages.items() if s["cached"]] == ["x"]  # its entry is sound
    np.testing.assert_allclose(result.values["save"], power(data).mean(axis=0))
    warnings = sorted(w for w in result.report["warnings"] if "corrupt" in w)
    assert len(warnings) == 3
    assert warnings[0].startswith("stage 'power': cache entry ")
    assert "does not match its size and CRC-32" in warnings[0]
    assert "no readable manifest" in warnings[2]
    for stage in damaged:  # written anew
        assert (_entry(cache, stage) / "entry.json").exists()
    _, stages = run(client, tmp_path, cache=cache)
    assert stages["summary"]["cached"]


def test_cache_true_on_one_stage_uses_the_default_folder(client, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "default"))
    doc = {"name": "one", "stages": [
        {"id": "r", "op": "random", "shape": [30, 4], "chunks": [10, 4], "seed": 3},
        {"id": "noseed", "op": "random", "shape": [30, 4], "cache": True},
        {"id": "s", "op": "reduce", "input": "r", "how": "sum", "axis": 0, "cache": True},
        {"id": "t", "op": "reduce", "input": "noseed", "how": "sum", "axis": 0},
        {"id": "w", "op": "write", "input": "s", "path": "s.json"},
        {"id": "w2", "op": "write", "input": "t", "path": "t.json"}]}
    first, _ = run(client, tmp_path, doc)
    assert [p.name for p in (tmp_path / "default" / "entries").iterdir()] \
        == [next(p.name for p in (tmp_path / "default" / "entries").iterdir())]  # only s
    assert "stage 'noseed' is not cached: its seed is null: a new random draw each run" \
        in first.report["warnings"]
    second, stages = run(client, tmp_path, doc)
    assert stages["s"]["cached"] and not stages["r"]["computed"]
    assert not stages["noseed"]["cached"]
    np.testing.assert_array_equal(second.values["w"], first.values["w"])


def test_tables_are_cached_as_parquet_in_order(client, tmp_path):
    doc = {"name": "tab", "stages": [
        {"id": "t", "op": "random_table", "rows": 3000, "partitions": 5, "seed": 1,
         "columns": {"k": {"keys": 7}, "v": {"distribution": "normal"}}},
        {"id": "sorted", "op": "sort", "input": "t", "by": "v"},
        {"id": "g", "op": "groupby", "input": "sorted", "by": "k", "agg": {"v": ["mean"]}},
        {"id": "w1", "op": "write", "input": "sorted", "path": "sorted.parquet"},
        {"id": "w2", "op": "write", "input": "g", "path": "g.json"}]}
    cache = tmp_path / "cache"
    first, _ = run(client, tmp_path, doc, cache=cache)
    second, stages = run(client, tmp_path, doc, {"stages.g.agg": {"v": ["max"]}}, cache=cache)
    assert stages["sorted"]["cached"] and not stages["t"]["computed"]
    got = second.values["w1"]
    pd.testing.assert_frame_equal(got, first.values["w1"])
    assert got["v"].is_monotonic_increasing  # the partitions came back in order
    want = got.groupby("k")["v"].max().reset_index().rename(columns={"v": "v_max"})
    pd.testing.assert_frame_equal(
        second.values["w2"].sort_values("k").reset_index(drop=True), want,
        check_dtype=False)


def test_a_failed_run_leaves_no_entry(client, tmp_path):
    doc = {"name": "f", "stages": [
        {"id": "x", "op": "random", "shape": [40, 4], "chunks": [10, 4], "seed": 0},
        {"id": "b", "op": "map_blocks", "input": "x", "function": "tests.userfuncs:explode"},
        {"id": "w", "op": "write", "input": "b", "path": "b.npy"}]}
    cache = tmp_path / "cache"
    with pytest.raises(pipeline.RunFailed):
        run(client, tmp_path, doc, cache=cache)
    assert not (cache / "entries").exists() or not any((cache / "entries").iterdir())
    assert not any((cache / "tmp").iterdir())


def test_cache_ls_and_clear(client, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.ones((60, 16)))
    cache = tmp_path / "cache"
    assert main(["run", str(_yaml(tmp_path)), "--address", client.scheduler.address,
                 "--quiet", "--output-dir", str(tmp_path / "out"), "--cache",
                 str(cache)]) == 0
    capsys.readouterr()
    assert main(["run", str(_yaml(tmp_path)), "--address", client.scheduler.address,
                 "--quiet", "--output-dir", str(tmp_path / "out"), "--cache",
                 str(cache)]) == 0
    table = capsys.readouterr().out
    assert "summary   reduce (cached)" in table
    assert main(["cache", "clear", "--cache", str(cache)]) == 0
    assert capsys.readouterr().out.startswith("removed 4 entries (")
    assert main(["cache", "ls", "--cache", str(cache)]) == 0
    assert capsys.readouterr().out.startswith(f"{cache}: 0 entries, 0 B")


def _yaml(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(json.dumps(SPECTRUM))
    return path


def test_bad_cache_key_in_a_stage(tmp_path):
    with pytest.raises(pipeline.InputError, match="stages.x.cache: bad value 'yes'"):
        pipeline.load({"name": "b", "stages": [{"id": "x", "op": "random", "shape": [2],
                                                "cache": "yes"}]})


def test_what_killed_runs_left_half_written_is_removed(client, tmp_path, capsys):
    """A run that finds no other run using the cache removes tmp/ (entries being written
    by runs that died); while another run uses it, nothing there is touched, and
    ``cache clear`` is refused."""
    np.save(tmp_path / "x.npy", np.ones((60, 16)))
    cache = tmp_path / "cache"
    other = Store(cache)
    other.attach()  # a run using the cache meanwhile
    dead = cache / "tmp" / "0123abcd-deadbeef0000"
    dead.mkdir(parents=True)
    (dead / "part.0").write_bytes(b"x" * 100)
    try:
        run(client, tmp_path, cache=cache)
        assert dead.exists()  # it may be the other run's
        assert main(["cache", "clear", "--cache", str(cache)]) == 2
        assert f"cache: a run is using the cache {cache}" in capsys.readouterr().err
    finally:
        other.detach()
    _, stages = run(client, tmp_path, cache=cache)
    assert stages["save"]["cached"] is False and stages["summary"]["cached"] is True
    assert list((cache / "tmp").glob("*")) == []


@pytest.mark.parametrize("command", ["run", "clear", "ls"])
def test_a_folder_that_is_not_a_cache_is_refused_and_left_alone(client, tmp_path, capsys,
                                                                command):
    # before: `--cache .` in a project deleted its tmp/ folder, `cache clear` its entries/
    project = tmp_path / "project"
    for name, text in (("tmp/notes.txt", "mine"), ("entries/list.txt", "mine too")):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    before = sorted(str(p.relative_to(project)) for p in project.rglob("*"))
    np.save(tmp_path / "x.npy", np.ones((60, 16)))
    args = ["cache", command, "--cache", str(project)] if command != "run" else [
        "run", str(_yaml(tmp_path)), "--address", client.scheduler.address, "--quiet",
        "--output-dir", str(tmp_path / "out"), "--cache", str(project)]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"error: cache: {project} is not a cache folder: it holds entries, tmp and no "
        "CACHEDIR.TAG (give a new or empty folder: a cache deletes what it finds in its "
        "tmp/ and entries/)\n")
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*")) == before
    assert not (tmp_path / "out").exists()


def test_a_cache_folder_is_tagged_and_one_made_before_the_tag_is_kept(tmp_path):
    new = Store(tmp_path / "new")
    new.attach()
    new.detach()
    tag = (tmp_path / "new" / "CACHEDIR.TAG").read_text()
    assert tag.startswith("Signature: 8a477f597d28d172789f06886806bc55")  # the spec's
    old = tmp_path / "old"  # what a cache held before the tag
    (old / "entries" / "k").mkdir(parents=True)
    (old / "tmp").mkdir()
    (old / ".lock").touch()
    Store(old).clear()
    assert sorted(p.name for p in old.iterdir()) == [".lock", "CACHEDIR.TAG"]


def test_the_pipelines_own_folder_is_the_default_cache_beside_its_other_files(tmp_path,
                                                                             monkeypatch):
    from pipeline.cache import default_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("PIPELINE_CACHE_DIR", raising=False)
    own = tmp_path / "pipeline"
    (own / "kernels").mkdir(parents=True)  # advise's rates and the compiled kernels
    (own / "advise-rates.json").write_text("{}")
    assert default_dir() == own
    store = Store(own)
    store.attach()
    store.detach()
    assert sorted(p.name for p in own.iterdir()) == [".lock", "CACHEDIR.TAG",
                                                      "advise-rates.json", "kernels"]
