"""``python -m pipeline ops``: plain text, every op and every parameter."""

import re

import pytest

from pipeline import ops, optext
from pipeline.cli import main

MARKUP = re.compile(r"``|:[a-z]+:`|```")


def test_clean_drops_markup_and_keeps_the_yaml():
    doc = ("Equals ``scipy.signal.convolve(x,\nk)``; see :func:`numpy.fft.rfft` and `axis`.\n"
           "```yaml\n- id: a\n  op: fft\n```\nAfter.")
    assert optext.clean(doc) == ("Equals scipy.signal.convolve(x,\nk); see numpy.fft.rfft "
                                 "and axis.\n\n    - id: a\n      op: fft\nAfter.")


@pytest.mark.parametrize("name", sorted(ops.catalogue()))
def test_each_op_renders_clean_text_with_its_parameters(name, capsys):
    assert main(["ops", name]) == 0
    out = capsys.readouterr().out
    assert not MARKUP.search(out), out
    info = ops.get(name)
    listed = out.split("\nparameters:\n", 1)[1]
    for p in info.params.values():
        assert re.search(rf"^  {p.name} +\S", listed, re.M), p.name
        assert ("required" if p.required else f"default {optext.yaml_value(p.default)}") \
            in listed
    assert f"op: {name}" in out  # its YAML example


def test_listing_names_every_op_and_fits_80_columns(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert not MARKUP.search(out)
    assert max(map(len, out.splitlines())) <= 80
    for name, info in ops.catalogue().items():
        assert re.search(rf"^  {name} ", out, re.M), name
        for p in info.params.values():
            assert p.name in out


def test_yaml_words_for_defaults():
    assert [optext.yaml_value(v) for v in (None, True, False, [-2, -1], "auto", 0.5)] == \
        ["null", "true", "false", "[-2, -1]", "auto", "0.5"]


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"pipeline \d+\.\d+\.\d+ \(dask \S+, distributed \S+, Python \S+\)\n",
                        out)
