"""The workflow JSON Schema: built from the registry, it accepts every shipped workflow
and rejects what ``validate`` rejects, as the ``jsonschema`` library checks it."""

import json

import pytest
from jsonschema import Draft202012Validator

from pipeline import ops, plan, schema, spec
from pipeline.cli import main
from pipeline.errors import InputError
from pipeline.ops.registry import OpInfo, Param
from tests.conftest import REPO

WORKFLOWS = sorted((REPO / "workflows").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator():
    doc = schema.workflow_schema()
    Draft202012Validator.check_schema(doc)
    return Draft202012Validator(doc)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_shipped_workflow_is_valid(validator, path):
    errors = [e.message for e in validator.iter_errors(spec.parse_yaml(path.read_text()))]
    assert errors == []


BASE = {"name": "t", "stages": [
    {"id": "a", "op": "random", "shape": [8, 4]},
    {"id": "k", "op": "kernel", "kind": "box", "size": 3},
    {"id": "c", "op": "convolve", "input": "a", "kernel": "k", "mode": "same"},
    {"id": "e", "op": "elementwise", "inputs": {"x": "c"}, "expr": "x + 1"},
    {"id": "m", "op": "matmul", "inputs": ["a", "a"]},
    {"id": "w", "op": "write", "input": "e", "path": "e.npy"},
]}


def mutated(path: str, value):
    """BASE with one field replaced; ``stages.<i>.<key>`` addresses a stage by index."""
    doc = json.loads(json.dumps(BASE))
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


DELETE = object()
BAD = {
    "unknown op": ("stages.0.op", "randm"),
    "unknown parameter": ("stages.0.shapes", [8]),
    "parameter of the wrong type": ("stages.0.shape", "8x4"),
    "a list of the wrong item type": ("stages.0.shape", [8, "4"]),
    "a boolean for an integer": ("stages.3.inputs", {"x": True}),
    "a value outside an enum": ("stages.2.mode", "wide"),
    "missing required parameter": ("stages.5.path", DELETE),
    "missing input": ("stages.2.input", DELETE),
    "list inputs where a mapping is taken": ("stages.3.inputs", ["c"]),
    "input on a source": ("stages.0.input", "k"),
    "matmul with three inputs": ("stages.4.inputs", ["a", "a", "a"]),
    "bad input name": ("stages.3.inputs", {"1x": "c"}),
    "bad stage id": ("stages.0.id", "a b"),
    "no stages": ("stages", []),
    "unknown top-level key": ("stage", []),
    "bad name": ("name", "Spectrum!"),
    "unknown backend": ("backend", "tpu"),
    "unknown cluster key": ("cluster.workers", 2),
    "zero workers": ("cluster.n_workers", 0),
    "unknown protocol": ("cluster.protocol", "udp"),
    "unknown security key": ("cluster.security", {"tls_key": "k.pem"}),
    "a negative memory limit": ("cluster.memory_limit", -1),
    "a string for a boolean": ("cluster.enable_cudf_spill", "yes"),
    "cache not true or false": ("stages.0.cache", "yes"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_workflows_are_rejected_by_the_schema_and_by_validate(validator, tmp_path, case):
    doc = mutated(*BAD[case])
    assert list(validator.iter_errors(doc)), f"the schema accepts: {case}"
    path = tmp_path / "wf.yaml"
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError):
        plan.build(spec.load(path))


GOOD = {
    "kernel as an inline list": ("stages.2.kernel", [[1, 2], [3, 4]]),
    "an optional parameter left null": ("stages.2.axes", None),
    "cluster settings": ("cluster", {"n_workers": 2, "threads_per_worker": "auto",
                                     "memory_limit": "2GB", "dashboard_address": None}),
    "a number where a float is taken": ("stages.0.loc", 3),
    "a cached stage": ("stages.0.cache", True),
}


@pytest.mark.parametrize("case", GOOD, ids=list(GOOD))
def test_good_variants_are_accepted_by_both(validator, tmp_path, case):
    doc = mutated(*GOOD[case])
    assert [e.message for e in validator.iter_errors(doc)] == []
    path = tmp_path / "wf.yaml"
    path.write_text(json.dumps(doc))
    plan.build(spec.load(path))


def test_schema_follows_the_registry():
    """A newly registered op (a third party's) appears with its parameters."""
    def custom(ctx, x, *, factor: float, mode: str = "fast"):
        """Scale it."""

    info = OpInfo("scale_it", "array", "input", None, custom,
                  {"factor": Param("factor", float, None, True),
                   "mode": Param("mode", str, "fast", False)}, ())
    doc = schema.workflow_schema({**ops.catalogue(), "scale_it": info})
    assert "scale_it" in doc["$defs"]["stage"]["properties"]["op"]["enum"]
    branch = doc["$defs"]["op-scale_it"]
    assert branch["required"] == ["input", "factor"]
    assert branch["properties"]["mode"] == {"type": "string", "default": "fast"}
    assert branch["description"] == "Scale it."
    v = Draft202012Validator(doc)
    stage = {"id": "s", "op": "scale_it", "input": "a", "factor": 2.5}
    good = {"name": "x", "stages": [BASE["stages"][0], stage]}
    assert list(v.iter_errors(good)) == []
    assert list(v.iter_errors({"name": "x", "stages": [{**stage, "factor": "big"}]}))


def test_every_cluster_key_is_described():
    props = schema.workflow_schema()["properties"]["cluster"]["properties"]
    assert set(props) == set(spec.CLUSTER_DEFAULTS)
    for key, prop in props.items():
        assert prop.get("description"), f"cluster.{key}: describe it in schema.CLUSTER"


def test_every_stage_key_has_a_schema_and_descriptions_are_plain_text():
    doc = schema.workflow_schema()
    for name, branch in doc["$defs"].items():
        if name.startswith("op-"):
            assert "``" not in branch["description"], name
            assert set(spec.STAGE_KEYS) - {"input", "inputs"} <= set(branch["properties"])


def test_cli_prints_and_writes_the_schema(tmp_path, capsys):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == schema.workflow_schema()
    target = tmp_path / "workflow.schema.json"
    assert main(["schema", "-o", str(target)]) == 0
    assert json.loads(target.read_text()) == printed
    assert [p.name for p in tmp_path.iterdir()] == ["workflow.schema.json"]  # no temp left
    assert main(["schema", "-o", str(tmp_path / "missing" / "s.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
