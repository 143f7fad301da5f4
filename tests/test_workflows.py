"""Every example workflow validates at its real size and runs at a small one."""

import json

import pytest

from pipeline.cli import main
from tests.conftest import REPO

WORKFLOWS = sorted((REPO / "workflows").glob("*.yaml"))
# --set overrides that shrink each example to a test size. Every workflow needs an entry.
SMALL = {
    "spectrum": ["stages.signal.shape=[512,128]"],
}


def test_every_workflow_has_a_small_size():
    assert sorted(p.stem for p in WORKFLOWS) == sorted(SMALL)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_validates_at_full_size(path, capsys):
    assert main(["validate", str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_runs_small_on_cpu(path, address, tmp_path):
    args = ["run", str(path), "--backend", "cpu", "--address", address, "--quiet",
            "--output-dir", str(tmp_path)]
    for item in SMALL[path.stem]:
        args += ["--set", item]
    assert main(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["outputs"] and all(o["bytes"] > 0 for o in report["outputs"])
