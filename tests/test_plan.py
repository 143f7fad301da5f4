import textwrap

import pytest

from pipeline import plan, spec
from pipeline.errors import InputError

HEAD = "name: demo\nstages:\n"


def build(tmp_path, stages: str):
    path = tmp_path / "wf.yaml"
    path.write_text(HEAD + textwrap.indent(textwrap.dedent(stages), "  "))
    return plan.build(spec.load(path))


def plan_error(tmp_path, stages: str) -> InputError:
    with pytest.raises(InputError) as e:
        build(tmp_path, stages)
    return e.value


def test_order_follows_the_dag_and_file_order(tmp_path):
    p = build(tmp_path, """
    - {id: save, op: write, input: b, path: b.npy}
    - {id: b, op: elementwise, inputs: {x: a}, expr: x * 2}
    - {id: a, op: random, shape: [4]}
    - {id: c, op: random, shape: [4]}
    """)
    assert [s.id for s in p.stages] == ["a", "b", "save", "c"]
    assert p.stages[0].params["dtype"] == "float64"  # defaults filled in
    assert p.warnings == ("stage 'c' feeds no other stage and is not a sink: "
                          "it will not be computed",)
    assert p.consumers("a") == ["b"]


def test_kernel_stage_ref_is_a_dag_edge(tmp_path):
    p = build(tmp_path, """
    - {id: x, op: random, shape: [16]}
    - {id: conv, op: convolve, input: x, kernel: k}
    - {id: k, op: random, shape: [3]}
    - {id: save, op: write, input: conv, path: c.npy}
    """)
    assert p.stages[[s.id for s in p.stages].index("conv")].upstream == ("x", "k")
    assert [s.id for s in p.stages].index("k") < [s.id for s in p.stages].index("conv")


@pytest.mark.parametrize("stages, where, fragment", [
    ("- {id: a, op: fftt}", "stages.a.op", "unknown op 'fftt'; did you mean 'fft'?"),
    ("- {id: a, op: random, shape: [4], sedd: 1}", "stages.a", "did you mean 'seed'"),
    ("- {id: a, op: random}", "stages.a.shape", "missing required parameter 'shape'"),
    ("- {id: a, op: random, shape: four}", "stages.a.shape", "expected list of integer"),
    ("- {id: a, op: random, shape: [4], seed: 1.5}", "stages.a.seed", "expected integer"),
    ("- {id: a, op: random, shape: [4], distribution: poisson}", "stages.a.distribution",
     "expected normal | uniform"),
    ("- {id: a, op: rfft, inputs: [b]}", "stages.a", "takes 'input: <id>'"),
    ("- {id: a, op: random, shape: [4]}\n- {id: b, op: rfft, input: nope}", "stages.b",
     "unknown stage id 'nope'"),
    ("- {id: a, op: rfft, input: a}", "stages.a", "cannot take itself"),
    ("- {id: a, op: rfft, input: b}\n- {id: b, op: rfft, input: a}", "stages",
     "cycle between stages a -> b -> a"),
    ("- {id: a, op: random, shape: [4]}\n- {id: w, op: write, input: a, path: a.npy}\n"
     "- {id: b, op: rfft, input: w}", "stages.b", "is a sink"),
    ("- {id: a, op: random, shape: [4]}\n- {id: m, op: matmul, inputs: [a]}", "stages.m.inputs",
     "takes 2 inputs"),
    ("- {id: a, op: random, shape: [4]}", "stages", "no sink stage"),
])
def test_plan_errors(tmp_path, stages, where, fragment):
    err = plan_error(tmp_path, stages)
    assert fragment in err.what, err.line()
    assert err.where == where, err.line()
    assert err.file.endswith("wf.yaml")
