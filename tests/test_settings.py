"""pipeline.settings: the pipeline's Dask config keys, read checked; a bad value is one
line and exit 2 before any worker starts."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import dask
import pytest

from pipeline import cluster, settings
from pipeline.cli import main
from pipeline.errors import InputError
from tests.conftest import REPO

SPECTRUM = str(REPO / "workflows" / "spectrum.yaml")


def test_values_and_defaults_from_dask_config():
    assert settings.seconds("connect-timeout") == 10 and settings.count("history") == 5
    assert settings.flag("fuse") is True
    with dask.config.set({"pipeline.no-workers-timeout": "2 minutes", "pipeline.history": 0,
                          "pipeline.connect-timeout": timedelta(milliseconds=1500),
                          "pipeline.max-chunks": "7", "pipeline.fuse": False,
                          "pipeline.performance-report": 0}):  # DASK_..._REPORT=0
        assert settings.seconds("no-workers-timeout") == 120
        assert settings.seconds("connect-timeout") == 1.5
        assert settings.count("history") == 0 and settings.count("max-chunks") == 7
        assert settings.flag("fuse") is False
        assert settings.flag("performance-report") is False


def test_every_key_has_a_checked_reader():
    assert {*settings.DURATIONS, *settings.MINIMUMS, *settings.FLAGS} == set(settings.DEFAULTS)
    settings.check()  # the defaults pass


@pytest.mark.parametrize("key, value", [
    ("connect-timeout", "abc"), ("workers-timeout", "-5s"), ("no-workers-timeout", 0),
    ("progress-heartbeat", "1e30s"), ("workers-timeout", float("nan")),
    ("connect-timeout", "inf"), ("connect-timeout", True), ("connect-timeout", [1]),
    ("history", -1), ("history", "many"), ("history", 2.5), ("history", None),
    ("max-chunks", 0), ("max-chunks", True),
    ("fuse", "no"), ("fuse", 2), ("fuse", 0.5), ("performance-report", "yes"),
    ("performance-report", None),
])
def test_a_bad_value_is_refused_naming_the_key(key, value):
    with dask.config.set({f"pipeline.{key}": value}), \
            pytest.raises(InputError, match=f"pipeline.{key} \\(Dask config\\)") as err:
        settings.check()
    assert err.value.where == f"pipeline.{key} (Dask config)" and "bad value" in str(err.value)


def test_a_bad_value_stops_a_run_before_any_cluster_starts(tmp_path, capsys, monkeypatch):
    def no_cluster(*args, **kwargs):
        raise AssertionError("a cluster was started")

    monkeypatch.setattr(cluster, "connect", no_cluster)
    out = tmp_path / "out"
    with dask.config.set({"pipeline.no-workers-timeout": "-5s"}):  # was: exit 1 after the run
        assert main(["run", SPECTRUM, "--output-dir", str(out)]) == 2
    assert capsys.readouterr().err == ("error: pipeline.no-workers-timeout (Dask config): "
                                       "bad value '-5s' (a duration such as 30s or 2min, at "
                                       "most 7 days)\n")
    assert not out.exists()


def test_validate_checks_them_as_run_does(capsys):
    with dask.config.set({"pipeline.history": -1}):
        assert main(["validate", SPECTRUM]) == 2
    assert capsys.readouterr().err.startswith("error: pipeline.history (Dask config): bad "
                                              "value -1")


def test_the_environment_is_checked_too(tmp_path):
    # DASK_PIPELINE__FUSE=no used to be read as true: bool("no")
    proc = subprocess.run([sys.executable, "-m", "pipeline", "run", SPECTRUM, "--output-dir",
                           str(tmp_path / "out")], capture_output=True, text=True,
                          env={**os.environ, "DASK_PIPELINE__FUSE": "no"}, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "error: pipeline.fuse (Dask config): bad value 'no' (true or false)\n"
    assert not (tmp_path / "out").exists()
