import os
import textwrap

import pytest

from pipeline import spec
from pipeline.errors import InputError

GOOD = """
name: demo
stages:
  - id: x
    op: random
    shape: [8, 4]
  - id: save
    op: write
    input: x
    path: x.npy
"""


def write(tmp_path, text, name="wf.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load_error(tmp_path, text, overrides=()) -> InputError:
    with pytest.raises(InputError) as e:
        spec.load(write(tmp_path, text), overrides)
    return e.value


def test_good_workflow_is_frozen_with_defaults(tmp_path):
    wf = spec.load(write(tmp_path, GOOD))
    assert wf.name == "demo" and wf.backend == "auto"
    assert wf.output_dir.as_posix() == "runs/demo"
    assert wf.cluster.n_workers == "auto" and wf.cluster.dashboard_address == "127.0.0.1:8787"
    assert wf.cluster.threads_per_worker == "auto"
    assert [s.id for s in wf.stages] == ["x", "save"]
    assert wf.stage("save").inputs == (("input", "x"),)
    assert wf.base_dir == tmp_path.resolve()
    with pytest.raises(TypeError):
        wf.stage("x").params["shape"] = [1]  # read-only mapping
    with pytest.raises(AttributeError):
        wf.name = "other"


def test_overrides_address_stages_by_id_and_parse_yaml(tmp_path):
    wf = spec.load(write(tmp_path, GOOD), ["stages.x.shape=[2, 3]", "backend=cpu",
                                           "cluster.n_workers=3", "stages.x.seed=7"])
    assert wf.stage("x").params["shape"] == [2, 3]
    assert wf.stage("x").params["seed"] == 7
    assert wf.backend == "cpu" and wf.cluster.n_workers == 3


def test_output_dir_argument_wins(tmp_path):
    wf = spec.load(write(tmp_path, GOOD), output_dir=tmp_path / "elsewhere")
    assert wf.output_dir == tmp_path / "elsewhere"


def test_inputs_list_and_mapping(tmp_path):
    wf = spec.load(write(tmp_path, GOOD + """
  - id: y
    op: elementwise
    inputs: {a: x}
    expr: a + 1
  - id: z
    op: matmul
    inputs: [x, y]
"""))
    assert wf.stage("y").inputs == (("a", "x"),) and wf.stage("y").input_style == "mapping"
    assert wf.stage("z").inputs == (("0", "x"), ("1", "y"))


@pytest.mark.parametrize("text, where, fragment", [
    ("name: demo\nstages: [\n", "line", "invalid YAML"),
    ("- a\n- b\n", None, "must be a YAML mapping"),
    ("name: Demo!\nstages: []\n", "name", "bad name"),
    ("name: demo\nstages: []\n", "stages", "non-empty list"),
    ("name: demo\nbackend: tpu\nstages: [{id: a, op: random}]\n", "backend",
     "unknown backend 'tpu'"),
    ("name: demo\nstagse: []\n", "top level", "did you mean 'stages'"),
    ("name: demo\ncluster: {n_worker: 2}\nstages: [{id: a, op: random}]\n", "cluster",
     "did you mean 'n_workers'"),
    ("name: demo\ncluster: {n_workers: 0}\nstages: [{id: a, op: random}]\n",
     "cluster.n_workers", "bad value 0"),
    ("name: demo\ncluster: {threads_per_worker: many}\nstages: [{id: a, op: random}]\n",
     "cluster.threads_per_worker", "bad value 'many'"),
    ("name: demo\ncluster: {protocol: udp}\nstages: [{id: a, op: random}]\n",
     "cluster.protocol", "unknown protocol"),
    ("name: demo\nstages: [{id: a, op: random}, {id: a, op: random}]\n", "stages.a",
     "duplicate stage id 'a'"),
    ("name: demo\nstages: [{op: random}]\n", "stages[0]", "missing id"),
    ("name: demo\nstages: [{id: a}]\n", "stages.a", "missing 'op'"),
    ("name: demo\nstages: [{id: a, op: x, input: b, inputs: [c]}]\n", "stages.a",
     "not both"),
    ("name: demo\nstages: [{id: a, op: x, inputs: 3}]\n", "stages.a.inputs", "bad inputs"),
])
def test_bad_files_name_the_place(tmp_path, text, where, fragment):
    err = load_error(tmp_path, text)
    assert fragment in err.what
    assert err.file.endswith("wf.yaml")
    if where:
        assert err.where.startswith(where)
    line = err.line()
    assert line.startswith("error: ") and "\n" not in line


def test_yaml_error_gives_line_number(tmp_path):
    err = load_error(tmp_path, "name: demo\nstages:\n  - id: a\n   op: random\n")
    assert err.where.startswith("line 4")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="workflow file not found"):
        spec.load(tmp_path / "nope.yaml")


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_a_workflow_path_that_is_no_file(tmp_path, kind):
    path = {"folder": tmp_path, "device": "/dev/zero"}.get(kind, tmp_path / "fifo.yaml")
    if kind == "fifo":
        os.mkfifo(path)  # opened without blocking: no writer ever comes
    with pytest.raises(InputError, match=r"not a regular file \(a folder, device or pipe\)"):
        spec.load(path)  # a folder: IsADirectoryError, "internal error", before


@pytest.mark.parametrize("override, fragment", [
    ("nonsense", "bad override"),
    ("stages.nope.shape=[1]", "no stage with id 'nope'"),
    ("stagse.x.shape=[1]", "did you mean 'stages'"),
    ("stages.x=1", "cannot replace a whole stage"),
    ("stages.x.shape=[1,", "bad override value"),
    ("backend=tpu", "unknown backend"),
])
def test_bad_overrides(tmp_path, override, fragment):
    err = load_error(tmp_path, GOOD, [override])
    assert fragment in err.what


def test_on_off_yes_no_stay_strings_true_false_are_booleans(tmp_path):
    wf = spec.load(write(tmp_path, GOOD + """
  - id: j
    op: join
    inputs: [x, x]
    on: key
    how: inner
    flag: yes
    other: true
"""), ["stages.j.how=off"])
    params = wf.stage("j").params
    assert params["on"] == "key" and params["flag"] == "yes" and params["how"] == "off"
    assert params["other"] is True



@pytest.mark.parametrize("item", [
    "device_memory_limit=-1", "device_memory_limit=lots", "device_memory_limit=null",
    "device_memory_limit=.nan", "rmm_pool_size=0", "rmm_pool_size=x", "memory_limit=lots",
    "memory_limit=true", "enable_cudf_spill=yes",
])
def test_bad_memory_settings_are_exit_2_at_load(tmp_path, item):
    """Found on any host, before a cluster starts (whether a size fits the GPU is the
    preflight's check against the device)."""
    e = load_error(tmp_path, GOOD, [f"cluster.{item}"])
    assert e.where == f"cluster.{item.split('=')[0]}" and e.exit_code == 2


@pytest.mark.parametrize("item, value", [
    ("device_memory_limit=auto", "auto"), ("device_memory_limit=0", 0),
    ("device_memory_limit=0.8", 0.8), ("device_memory_limit=5000M", "5000M"),
    ("rmm_pool_size=20 GiB", "20 GiB"), ("memory_limit=null", None),
    ("memory_limit=4GB", "4GB"), ("enable_cudf_spill=true", True),
])
def test_good_memory_settings(tmp_path, item, value):
    wf = spec.load(write(tmp_path, GOOD), [f"cluster.{item}"])
    assert getattr(wf.cluster, item.split("=")[0]) == value
