"""Whatever is in a mission file, validation returns located diagnostics and never raises."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexusmon.engine.project import open_project, validate

MISSION = "missions/m.yaml"
# The same examples on every run, so a CI result is reproducible; set
# NEXUSMON_FUZZ=random to explore new ones (and NEXUSMON_FUZZ_EXAMPLES for more of them).
FUZZ = settings(
    max_examples=int(os.environ.get("NEXUSMON_FUZZ_EXAMPLES", "150")), deadline=None,
    database=None, derandomize=os.environ.get("NEXUSMON_FUZZ") != "random",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# -- a grammar of YAML-ish text ---------------------------------------------------------------

KEYS = st.sampled_from([
    "mission", "objective", "tasks", "run", "needs", "worker", "with", "uses", "matrix", "if", "rank",
    "env", "inputs", "type", "default", "enum", "secrets", "constraints", "max_steps", "outputs",
    "build", "test", "a", "b", "<<", "? x", "1", "~", "yes", "'quoted'", '"dq"', "k k", "tasks.x",
])
SCALARS = st.sampled_from([
    "echo hi", "{{ inputs.x }}", "{{ tasks.build.outputs.stdout }}", "{{", "{% if %}", "}}", "{#",
    "noop", "shell", "template", "E", "S", "Q", "true", "no", "null", "~", "1.0", "-1", "0x1F", "1e9",
    "2024-01-02", "12:30:00", "''", '""', "'it''s'", '"\\x07"', "|", ">-", "@x", "`cmd`", "%x", "!",
    "&a", "*a", "&a x", "*missing", "!!python/object:os.system", "!!binary aGk=", "!local v", "!!str 5",
    "!!set {x}", "[", "]", "{", "}", "[a, b]", "{a: 1, a: 2}", "[*a, *a]", "{{ ''.__class__ }}",
    "build[x]", "docs-build@2", "docs-build@x", "é", "\u202e", "#", "- -", ": :", "\t",
])
INDENTS = st.sampled_from(["", "  ", "    ", "      ", " ", "\t", "- ", "  - ", "    - "])
LINE = st.one_of(
    st.tuples(INDENTS, KEYS, st.just(": "), SCALARS).map("".join),
    st.tuples(INDENTS, KEYS, st.just(":")).map("".join),
    st.tuples(INDENTS, SCALARS).map("".join),
    st.tuples(INDENTS, KEYS, st.just(": {"), KEYS, st.just(": "), SCALARS, st.just("}")).map("".join),
    st.tuples(INDENTS, KEYS, st.just(": ["), SCALARS, st.just(", "), SCALARS, st.just("]")).map("".join),
    st.tuples(INDENTS, KEYS, st.just(": &a "), SCALARS).map("".join),
    st.sampled_from(["---", "...", "%YAML 1.1", "# comment", ""]),
)
YAMLISH = st.lists(LINE, max_size=25).map("\n".join)

# -- near-valid missions, so that the compiler runs too ------------------------------------------

IDS = st.sampled_from(["build", "test", "deploy", "docs", "x", "buidl"])
TEMPLATES = st.sampled_from([
    "echo {{ inputs.name }}", "echo {{ inputs.nme }}", "echo {{ tasks.build.outputs.stdout }}",
    "echo {{ matrix.v }}", "echo {{ secrets.TOKEN }}", "echo {{ run.id }}", "echo {{ mission.id }}",
    "echo {{ nope }}", "echo {{", "echo {% for %}", "echo {{ x | raw }}", "echo {{ ''.__class__ }}",
    "echo plain", "echo {{ tasks['test'].status }}", "echo {{ env.LANG }}",
])
TASK = st.fixed_dictionaries(
    {},
    optional={
        "run": TEMPLATES,
        "worker": st.sampled_from(["noop", "template", "shel", "shell", "mission"]),
        "uses": st.sampled_from(["docs-build", "docs-build@2", "nothing"]),
        "needs": st.one_of(IDS, st.lists(IDS, max_size=3)),
        "if": st.sampled_from(["inputs.dry", "not inputs.name", "tasks.build.status == 'ok'", "(", True]),
        "rank": st.sampled_from(["E", "A", "S", "Z"]),
        "matrix": st.dictionaries(st.sampled_from(["v", "w"]), st.lists(st.integers(0, 3), min_size=1, max_size=3),
                                  min_size=1, max_size=2),
        "with": st.dictionaries(st.sampled_from(["text", "path", "source"]), TEMPLATES, max_size=2),
        "env": st.dictionaries(st.sampled_from(["A", "B"]), TEMPLATES, max_size=2),
    },
)
MISSION_DATA = st.fixed_dictionaries(
    {"mission": st.sampled_from(["m", "fuzz"]), "objective": st.just("fuzz"),
     "tasks": st.dictionaries(IDS, TASK, min_size=1, max_size=5)},
    optional={
        "inputs": st.just({"name": {"type": "string", "default": "w"}, "dry": {"type": "boolean"}}),
        "env": st.just({"LANG": "{{ inputs.name }}"}),
        "secrets": st.just(["TOKEN"]),
        "constraints": st.fixed_dictionaries({"max_steps": st.integers(1, 4)}),
    },
)
MISSIONS = MISSION_DATA.map(lambda d: yaml.safe_dump(d, sort_keys=False))


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "missions").mkdir()
    (root / "runes").mkdir()
    (root / "runes" / "docs-build.yaml").write_text(
        "rune: docs-build\nversion: 2\ninputs:\n  source: {type: string, default: docs}\n"
        "tasks:\n  render: {run: 'echo {{ inputs.source }}'}\n",
        encoding="utf-8",
    )
    return root


YAML_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def check(root: Path, raw: bytes) -> None:
    (root / MISSION).write_bytes(raw)
    problems = validate(open_project(root))
    # YAML's line breaks, as libyaml counts them for its marks: a lone CR is one too.
    lines = len(YAML_BREAKS.findall(raw.decode("utf-8", "replace"))) + 1
    for d in problems:
        assert d.location.path == MISSION, str(d)
        assert 1 <= d.location.line <= lines + 1, str(d)
        assert d.location.col >= 1, str(d)
        assert d.message and "\n" not in d.message, str(d)


@FUZZ
@given(text=YAMLISH)
def test_yamlish_text_gives_located_diagnostics(fuzz_root: Path, text: str) -> None:
    check(fuzz_root, text.encode("utf-8"))


@FUZZ
@given(text=MISSIONS)
def test_near_valid_missions_give_located_diagnostics(fuzz_root: Path, text: str) -> None:
    check(fuzz_root, text.encode("utf-8"))


@FUZZ
@given(raw=st.binary(max_size=300))
def test_random_bytes_give_located_diagnostics(fuzz_root: Path, raw: bytes) -> None:
    check(fuzz_root, raw)


@FUZZ
@given(raw=st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_random_text_gives_located_diagnostics(fuzz_root: Path, raw: bytes) -> None:
    check(fuzz_root, raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00m\x00",
        b"mission: m\nobjective: x\ntasks:\n  a: {run: 'echo {{', needs: [a]}\n",
        b"&a [*a, *a]\n",
        b"tasks: !!python/object/apply:os.system ['touch pwned']\n",
        b"mission: m\nobjective: x\ntasks:\n\ta: {run: x}\n",
    ],
    ids=["utf16", "broken-template", "recursive-alias", "python-tag", "tab"],
)
def test_real_process_reports_and_exits_1(make_workspace, nexusmon_process, tmp_path, raw) -> None:
    root = make_workspace(tmp_path, {})
    (root / MISSION).write_bytes(raw)
    code, out, err = nexusmon_process(["validate"], cwd=root)
    assert (code, out) == (1, ""), err
    assert "Traceback" not in err and "internal error" not in err
    assert err.splitlines()[0].startswith(f"{MISSION}:")
    assert not (root / "pwned").exists()
