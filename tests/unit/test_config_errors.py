"""Invalid configurations are refused with every problem, each at FILE:LINE:COLUMN with its key path.

The table is tests/unit/config_cases/invalid.yaml: each case lists every
problem expected, in order, as "LINE:COLUMN: key.path: gist".
"""

import os

import pytest
import yaml

from vc5.config import ConfigError, load_text

CASES_FILE = os.path.join(os.path.dirname(__file__), "config_cases", "invalid.yaml")
with open(CASES_FILE) as f:
    CASES = yaml.safe_load(f)


def test_the_table_is_big_enough_and_ids_are_unique():
    ids = [c["id"] for c in CASES]
    assert len(ids) >= 30
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_invalid_config_is_refused_with_every_problem(case):
    with pytest.raises(ConfigError) as e:
        load_text(case["config"], source="t.yaml")
    got = e.value.problems
    expected = case["problems"]
    rendered = "\n".join(str(p) for p in got)
    assert len(got) == len(expected), rendered
    for problem, want in zip(got, expected):
        position, path, gist = want.split(": ", 2)
        assert f"{problem.line}:{problem.column}" == position, rendered
        assert problem.path == path, rendered
        assert gist in problem.message, rendered
        # the operator-facing line: FILE:LINE:COLUMN: key.path: message
        prefix = f"t.yaml:{position}: {path}: " if path else f"t.yaml:{position}: "
        assert str(problem) == prefix + problem.message
    assert str(e.value) == rendered


def test_problems_are_in_file_order():
    text = "\n".join(c["config"] for c in CASES if c["id"] == "every-problem-collected")
    with pytest.raises(ConfigError) as e:
        load_text(text)
    lines = [(p.line, p.column) for p in e.value.problems]
    assert lines == sorted(lines)
