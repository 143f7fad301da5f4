"""The run folder's mechanics (pipeline/runfolder.py), without a cluster: sink paths, the
swap and its history, the lock, stale staging folders, and folders it must not take."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import dask
import pytest

from pipeline import runfolder
from pipeline.errors import InputError, OpError
from pipeline.runfolder import RunFolder


@pytest.mark.parametrize("path, fragment", [
    (".", "is the run folder itself"), ("", "bad path ''"), ("sub/..", "the run folder itself"),
    ("..", "outside the run folder"), ("../x.npy", "outside the run folder"),
    ("/etc/x.npy", "outside the run folder"), ("report.json", "the run's own report.json"),
    ("performance-report.html", "the run's own"), ("a\0b.npy", "bad path"),
    ("x" * 256 + ".npy", "longer than 255 bytes"),
])
def test_a_sink_path_must_be_a_file_of_its_own(tmp_path, path, fragment):
    with pytest.raises(OpError, match=fragment.replace(".", r"\.")) as e:
        runfolder.sink_path(path, tmp_path / "out")
    assert e.value.where == "path"


def test_sink_paths_inside_the_folder(tmp_path):
    out = tmp_path / "out"
    assert runfolder.sink_path("sub/./x.npy", out) == PurePosixPath("sub/x.npy")
    assert runfolder.sink_path(str(out / "y.npy"), out) == PurePosixPath("y.npy")
    assert runfolder.sink_path("sub/report.json", out) == PurePosixPath("sub/report.json")
    taken = [PurePosixPath("a.zarr"), PurePosixPath("b/c.npy")]
    for clash in ("a.zarr", "a.zarr/x.npy", "b"):
        with pytest.raises(OpError, match="another stage"):
            runfolder.check_overlap(PurePosixPath(clash), taken)
    runfolder.check_overlap(PurePosixPath("a.zarr2"), taken)


def finished(folder: RunFolder, files: dict[str, str], started: str) -> None:
    """Fill the staging folder as a finished run would, and swap it in."""
    for name, text in files.items():
        (folder.staging / name).write_text(text)
    (folder.staging / "report.json").write_text(json.dumps({"started": started}))
    folder.commit()


def test_a_run_replaces_the_last_as_a_whole_and_keeps_it_in_the_history(tmp_path):
    out = tmp_path / "runs" / "x"
    with RunFolder(out) as f:
        assert f.staging.parent == out.parent and f.staging.name.startswith(".x.staging-")
        finished(f, {"old.npy": "1", "same.npy": "1"}, "2026-01-02T03:04:05+00:00")
    with RunFolder(out) as f:
        finished(f, {"same.npy": "2"}, "2026-01-02T03:05:00+00:00")
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "same.npy"]
    assert (out / "same.npy").read_text() == "2"
    [old] = (tmp_path / "runs" / "x.history").iterdir()
    assert old.name == "20260102T030405Z"  # the start of the run it holds
    assert (old / "old.npy").read_text() == "1" and (old / "report.json").exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["x", "x.history"]  # no lock


def test_the_history_is_bounded(tmp_path):
    out = tmp_path / "x"
    with dask.config.set({"pipeline.history": 2}):
        for minute in range(5):
            with RunFolder(out) as f:
                finished(f, {}, f"2026-01-02T03:0{minute}:00+00:00")
    assert [p.name for p in sorted((tmp_path / "x.history").iterdir())] == [
        "20260102T030200Z", "20260102T030300Z"]
    with dask.config.set({"pipeline.history": 0}):
        with RunFolder(out) as f:
            finished(f, {"new": "n"}, "2026-01-02T04:00:00+00:00")
    assert not (tmp_path / "x.history").exists() and (out / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]
    with dask.config.set({"pipeline.history": "many"}), pytest.raises(InputError,
                                                                     match="pipeline.history"):
        RunFolder(out)


def test_a_failed_run_leaves_the_folder_and_files_its_report(tmp_path):
    out = tmp_path / "x"
    with RunFolder(out) as f:
        finished(f, {"result.npy": "good"}, "2026-01-02T03:04:05+00:00")
    started = datetime(2026, 1, 2, 4, 0, tzinfo=timezone.utc)
    with RunFolder(out) as f:
        (f.staging / "result.npy").write_text("half")
        (f.staging / "performance-report.html").write_text("dask's")
        entry = f.fail(started, lambda into: (into / "report.json").write_text("{}"))
    assert entry == tmp_path / "x.history" / "20260102T040000Z-failed"
    assert sorted(p.name for p in entry.iterdir()) == ["performance-report.html",
                                                       "report.json"]
    assert (out / "result.npy").read_text() == "good"  # the previous results, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x", "x.history"]


def test_bad_input_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(InputError), RunFolder(out):
        assert (tmp_path / "a" / "b").is_dir()
        raise InputError("bad stage")
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_into_the_folder_is_refused(tmp_path):
    out = tmp_path / "x"
    with RunFolder(out):
        with pytest.raises(InputError) as e:
            RunFolder(out).__enter__()
        assert e.value.line() == (
            f"error: output_dir: another run (pid {os.getpid()}) is writing {out} (wait for "
            "it to finish, or give this run its own --output-dir)")
    with RunFolder(out):  # released
        pass


def test_what_a_killed_run_left_is_cleaned(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "report.json").write_text("{}")
    (out / ".staging-0123").mkdir()  # the layout before run folders were swapped
    dead = tmp_path / ".x.staging-dead"
    (dead / "big").mkdir(parents=True)
    lock = tmp_path / ".x.lock"
    lock.write_text("999999\n")  # its process is gone, so is its flock
    with RunFolder(out) as f:
        assert not dead.exists() and not (out / ".staging-0123").exists()
        fd = os.open(lock, os.O_RDWR)
        with pytest.raises(BlockingIOError):  # the lock is held, by this run
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        assert f.staging.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


@pytest.mark.parametrize("make, fragment", [
    (lambda p: p.write_text("a file"), "exists and is not a folder"),
    (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), "it is not a run folder"),
    (lambda p: p.with_name("x.history").write_text(""), "x.history exists and is not a folder"),
])
def test_folders_it_must_not_take(tmp_path, make, fragment):
    out = tmp_path / "x"
    make(out)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(InputError, match=fragment):
        RunFolder(out).__enter__()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("where, fragment", [
    ("file/out", "file is not a folder"), ("x" * 300, "the name is too long"),
    ("/proc/out", "cannot"), ("/", "cannot be a run folder"),
])
def test_folders_it_cannot_make_are_exit_2(tmp_path, where, fragment):
    (tmp_path / "file").write_text("")
    path = where if where.startswith("/") else tmp_path / where
    with pytest.raises(InputError, match=fragment):
        RunFolder(path).__enter__()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_run_folder_made_by_an_older_version_is_taken(tmp_path):
    out = tmp_path / "x"
    out.mkdir()
    (out / "report.json").write_text("not json")
    os.utime(out, (0, 0))
    with RunFolder(out) as f:
        finished(f, {}, "2026-01-02T03:04:05+00:00")
    assert [p.name for p in (tmp_path / "x.history").iterdir()] == ["19700101T000000Z"]
    empty = tmp_path / "y"
    empty.mkdir()
    with RunFolder(empty) as f:
        finished(f, {}, "2026-01-02T03:04:05+00:00")
    assert Path(empty / "report.json").exists()
