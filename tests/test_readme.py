import re

import pytest

from tests.conftest import REPO


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    assert len(commands) >= 2 and "pytest" in commands[1]
    ci_lines = (REPO / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci_lines


README = (REPO / "README.md").read_text()


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def commands_block() -> str:
    return re.search(r"```\n(python -m pipeline run .+?)```", section("Commands"), re.S).group(1)


def subcommands():
    import argparse

    from pipeline.cli import _parser

    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


def test_every_command_and_option_is_in_the_readme():
    block = commands_block()
    parser, commands = subcommands()
    for name, sp in commands.items():
        assert f"python -m pipeline {name}" in block, f"command {name} missing"
        for action in sp._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in block, f"{name} {flag} missing from README's commands"
    for action in parser._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert flag in README, f"{flag} missing"
    # and nothing the README lists that the CLI lacks
    for name in re.findall(r"python -m pipeline (\w+)", block):
        assert name in commands, f"README lists '{name}', which the CLI does not have"
    for flag in set(re.findall(r"(--[a-z][a-z-]+)", block)):
        known = {f for sp in [parser, *commands.values()] for a in sp._actions
                 for f in a.option_strings}
        assert flag in known, f"README lists {flag}, which no command takes"


def test_every_cluster_key_is_documented_with_its_default():
    from pipeline.optext import yaml_value
    from pipeline.spec import CLUSTER_DEFAULTS

    table = section("Cluster settings")
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", table, re.M))
    assert set(rows) == set(CLUSTER_DEFAULTS)
    for key, default in CLUSTER_DEFAULTS.items():
        assert rows[key].strip() == yaml_value(default), key


@pytest.mark.parametrize("name", ["load", "run", "build"])
def test_the_api_signatures_are_the_documented_ones(name):
    import inspect

    import pipeline

    params = inspect.signature(getattr(pipeline, name)).parameters
    documented = re.search(rf"`pipeline\.{name}\(([^)]*)\)`", section("Python API")).group(1)
    named = [p.split("=")[0].strip() for p in documented.split(",")]
    named = [n for n in named if n not in ("", "*")]
    assert named == list(params), name


def test_every_dask_config_key_is_documented_with_its_default():
    from pipeline import settings

    rows = dict(re.findall(r"^\| `([\w-]+)` \| ([^|]+) \|", section("Dask config"), re.M))
    assert set(rows) == {*settings.DEFAULTS, "address"}  # address: a scheduler, or null
    for key, default in settings.DEFAULTS.items():
        text = str(default).lower() if isinstance(default, bool) else str(default)
        assert rows[key].strip() == text, key


def test_every_shipped_workflow_is_in_the_workflow_table():
    table = section("Real workloads")
    listed = set(re.findall(r"^\| `(\w+)\.yaml` \|", table, re.M))
    assert listed == {p.stem for p in (REPO / "workflows").glob("*.yaml")}


def test_every_op_is_named_in_the_readme():
    from pipeline import ops

    text = section("Ops")
    for name in ops.catalogue():
        assert f"`{name}`" in text, f"op {name} missing from README's Ops section"
