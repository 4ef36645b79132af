"""`validate`, `plan` and `graph` as users run them: formats, exit codes, workspace discovery."""

from __future__ import annotations

import json

import pytest

from nexusmon import __version__

FILES = {
    "missions/broken.yaml": """
        mission: broken
        objective: one undefined name
        tasks:
          build: {run: 'echo {{ nope }}'}
    """,
    "missions/deploy.yaml": """
        mission: deploy
        objective: build then deploy
        tasks:
          build: {run: echo build, description: Compile everything}
          test: {needs: build, run: echo test}
          deploy: {needs: [build, test], run: kubectl apply -f app.yaml}
          optional: {worker: noop, if: 'false'}
    """,
    "policies/safety.yaml": r"""
        policy: safety
        rules:
          - id: kube-needs-approval
            when: {run_matches: '\bkubectl\s+apply\b'}
            then: {rank: A}
    """,
}
BROKEN_LINE = "missions/broken.yaml:4:16: error: undefined name 'nope'"


@pytest.fixture
def root(make_workspace, tmp_path):
    return make_workspace(tmp_path, FILES)


@pytest.fixture
def clean_root(make_workspace, tmp_path):
    return make_workspace(tmp_path, {k: v for k, v in FILES.items() if "broken" not in k})


# -- validate -------------------------------------------------------------------------------------


def test_validate_text_ok(clean_root, cli) -> None:
    assert cli(["validate"], clean_root) == (0, "ok: 2 files valid\n", "")


def test_validate_text_errors_exit_1(root, cli) -> None:
    code, out, err = cli(["validate"], root)
    assert (code, out) == (1, "")
    assert err.splitlines() == [BROKEN_LINE, "1 error in 1 file"]


def test_validate_json(root, cli) -> None:
    code, out, err = cli(["validate", "--format", "json"], root)
    assert code == 1
    assert json.loads(out) == {
        "ok": False,
        "files": 3,
        "errors": [{
            "path": "missions/broken.yaml", "line": 4, "col": 16,
            "message": "undefined name 'nope'", "hint": None,
        }],
    }
    assert err == ""


def test_validate_json_ok(clean_root, cli) -> None:
    code, out, _ = cli(["validate", "--format", "json"], clean_root)
    assert (code, json.loads(out)) == (0, {"ok": True, "files": 2, "errors": []})


def test_validate_github_annotations(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/d.yaml": """
        mission: d
        objective: annotations
        tasks:
          build: {run: echo}
          publish: {needs: biuld, run: echo 100%}
    """})
    code, out, err = cli(["validate", "--format", "github"], root)
    assert code == 1
    assert out.splitlines() == [
        ("::error file=missions/d.yaml,line=5,col=20,title=nexusmon validate::"
        "task 'publish' needs unknown task 'biuld' (did you mean 'build'?)"),
    ]
    assert err.splitlines() == [
        "missions/d.yaml:5:20: error: task 'publish' needs unknown task 'biuld' (did you mean 'build'?)",
    ]


def test_validate_github_escapes_commas_and_colons_in_the_file_name(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/x,y:z.yaml": """
        mission: d
        objective: an odd file name
        tasks:
          publish: {needs: biuld, run: echo}
    """})
    code, out, _ = cli(["validate", "--format", "github"], root)
    assert code == 1
    assert out.startswith("::error file=missions/x%2Cy%3Az.yaml,line=4,col=20,title=nexusmon validate::")


def test_validate_of_a_path_holding_nothing_it_checks_is_a_usage_error(clean_root, cli, tmp_path) -> None:
    (clean_root / "missions" / "drafts").mkdir()
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x", encoding="utf-8")
    for given in ("missions/drafts", str(outside)):
        code, out, err = cli(["validate", given], clean_root)
        assert (code, out) == (2, ""), err
        assert err == (f"error: nothing to check in {given}: validate reads missions/, runes/, policies/, "
                       "approvals/ and nexusmon.yaml of the workspace\n")


def test_validate_github_ok_prints_nothing(clean_root, cli) -> None:
    assert cli(["validate", "--format", "github"], clean_root) == (0, "", "")


def test_validate_path_limits_output_to_that_file(root, cli) -> None:
    assert cli(["validate", "missions/deploy.yaml"], root) == (0, "ok: 1 file valid\n", "")
    code, _out, err = cli(["validate", "missions/broken.yaml"], root)
    assert (code, err.splitlines()) == (1, [BROKEN_LINE, "1 error in 1 file"])


def test_validate_folder_and_relative_path_from_a_subdirectory(root, cli) -> None:
    code, _, err = cli(["validate", "missions/"], root)
    assert (code, err.splitlines()[0]) == (1, BROKEN_LINE)
    assert cli(["validate", "deploy.yaml"], root / "missions") == (0, "ok: 1 file valid\n", "")
    assert cli(["validate", "../policies"], root / "missions") == (0, "ok: 1 file valid\n", "")



def test_validate_missing_path_is_a_usage_error(root, cli) -> None:
    code, out, err = cli(["validate", "missions/deploi.yaml"], root)
    assert (code, out) == (2, "")
    assert "missions/deploi.yaml" in err


def test_validate_as_a_real_process(root, nexusmon_process) -> None:
    code, out, err = nexusmon_process(["validate"], cwd=root)
    assert (code, out) == (1, "")
    assert err.splitlines() == [BROKEN_LINE, "1 error in 1 file"]


# -- plan -------------------------------------------------------------------------------------------


def test_plan_text(root, cli) -> None:
    code, out, err = cli(["plan", "deploy"], root)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "mission deploy: build then deploy"
    assert lines[1].split() == ["#", "task", "worker", "rank", "decision", "cache", "score", "needs"]
    rows = [line.split() for line in lines[2:-1] if not line.lstrip().startswith("- ")]
    assert [r[:6] for r in rows] == [
        ["1", "build", "shell", "D", "auto", "off"],
        ["2", "test", "shell", "D", "auto", "off"],
        ["3", "deploy", "shell", "A", "approve", "off"],
        ["4", "optional", "noop", "E", "auto", "off"],
    ]
    assert "      - skipped: `if` is false" in lines
    assert any("kube-needs-approval" in line for line in lines)
    assert lines[-1] == "4 tasks: 3 auto, 1 approve"


def test_plan_json_fields(root, plan_json) -> None:
    doc = plan_json(root, "deploy")
    assert doc["mission"] == "deploy"
    tasks = {t["id"]: t for t in doc["tasks"]}
    assert list(tasks) == ["build", "test", "deploy", "optional"]
    for task in tasks.values():
        assert {"id", "needs", "worker", "rank", "decision", "reasons", "cache"} <= set(task)
        assert isinstance(task["reasons"], list)
    deploy = tasks["deploy"]
    assert (deploy["needs"], deploy["worker"], deploy["rank"], deploy["decision"]) == (
        ["build", "test"], "shell", "A", "approve")
    assert any("kube-needs-approval" in r for r in deploy["reasons"])
    assert tasks["build"]["description"] == "Compile everything"
    assert tasks["build"]["cache"] == "off"


def test_a_broken_mission_does_not_stop_planning_another(root, cli) -> None:
    assert cli(["plan", "deploy"], root).exit_code == 0
    code, out, err = cli(["plan", "broken"], root)
    assert (code, out, err.splitlines()) == (2, "", [BROKEN_LINE])


def test_plan_explain(root, cli) -> None:
    code, out, err = cli(["plan", "deploy", "--explain", "deploy"], root)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "task deploy/deploy: worker shell, category forge"
    assert "  rule kube-needs-approval (policies/safety.yaml:3): matched -> rank A" in lines
    assert "effective rank A" in lines
    assert lines[-1] == "decision approve"


def test_plan_explain_unknown_task(root, cli) -> None:
    assert cli(["plan", "deploy", "--explain", "nope"], root) == (2, "", "error: mission 'deploy' has no task 'nope'\n")


def test_plan_by_path(root, cli) -> None:
    assert cli(["plan", "missions/deploy.yaml"], root).exit_code == 0
    assert cli(["plan", "deploy.yaml"], root / "missions").exit_code == 0


def test_unknown_mission_gets_did_you_mean(root, cli) -> None:
    assert cli(["plan", "deplyo"], root) == (2, "", "error: unknown mission 'deplyo' (did you mean 'deploy'?)\n")


# -- graph ------------------------------------------------------------------------------------------


def test_graph_mermaid(root, cli) -> None:
    code, out, err = cli(["graph", "deploy"], root)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "flowchart TD"
    assert out.count(" --> ") == 3
    assert sum(1 for line in lines if line.strip().endswith('"]')) == 4


def test_graph_dot(root, cli) -> None:
    code, out, err = cli(["graph", "deploy", "--format", "dot"], root)
    assert (code, err) == (0, "")
    assert out.startswith('digraph "deploy" {')
    assert out.count(" -> ") == 3
    assert '"build" -> "deploy";' in out and '"test" -> "deploy";' in out
    assert out.rstrip().endswith("}")


def test_graph_quotes_matrix_and_rune_ids(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/r.yaml": "rune: r\nversion: 1\ntasks:\n  a: {worker: noop}\n  b: {needs: a, worker: noop}\n",
        "missions/m.yaml": """
            mission: m
            objective: ids with punctuation
            tasks:
              t: {matrix: {os: [linux, mac]}, worker: noop}
              call: {uses: r, needs: t}
        """,
    })
    code, out, _ = cli(["graph", "m", "--format", "dot"], root)
    assert code == 0
    assert '"t[linux]" -> "call.a";' in out and '"t[mac]" -> "call.a";' in out
    assert '"call.a" -> "call.b";' in out
    code, out, _ = cli(["graph", "m"], root)
    assert code == 0 and out.count(" --> ") == 3 and '["t[linux]"]' in out


def test_graph_dot_writes_non_ascii_as_it_is_and_escapes_only_what_dot_reads(make_workspace, cli, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/m.yaml": """
        mission: m
        objective: ids Graphviz must draw as written
        tasks:
          t: {matrix: {city: ["zürich", 'say "hi" \\ bye', "🚀"]}, worker: noop}
    """})
    code, out, _ = cli(["graph", "m", "--format", "dot"], root)
    assert code == 0
    assert '"t[zürich]" [label="t[zürich]\\nnoop"];' in out  # DOT has no \\u escapes
    assert '"t[say \\"hi\\" \\\\ bye]"' in out
    assert '"t[🚀]"' in out


def test_graph_of_invalid_mission_exits_2(root, cli) -> None:
    assert cli(["graph", "broken"], root) == (2, "", BROKEN_LINE + "\n")


# -- workspace discovery and usage errors -----------------------------------------------------------


def test_root_is_found_from_a_subdirectory(root, cli) -> None:
    sub = root / "docs" / "deep"
    sub.mkdir(parents=True)
    assert cli(["plan", "deploy"], sub).exit_code == 0
    code, _, err = cli(["validate"], sub)
    assert (code, err.splitlines()[0]) == (1, BROKEN_LINE)


def test_dash_c_from_another_directory(root, cli, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert cli(["-C", str(root), "plan", "deploy"], elsewhere).exit_code == 0
    assert cli(["-C", "../ws", "plan", "missions/deploy.yaml"], elsewhere).exit_code == 0
    code, _, err = cli(["-C", "../ws", "validate"], elsewhere)
    assert (code, err.splitlines()[0]) == (1, BROKEN_LINE)



def test_dash_c_validate_path_is_relative_to_dir(root, cli, tmp_path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err = cli(["-C", "../ws", "validate", "missions/broken.yaml"], elsewhere)
    assert (code, out, err.splitlines()) == (1, "", [BROKEN_LINE, "1 error in 1 file"])


def test_dash_c_reads_every_relative_path_from_dir(cli, make_workspace, tmp_path) -> None:
    """As `git -C` and `make -C`: --inputs-file, --junit and --state-dir are relative to DIR too."""
    make_workspace(tmp_path, {"missions/m.yaml": """
        mission: m
        objective: paths under -C
        inputs: {n: {type: integer}}
        tasks:
          a: {run: "echo {{ inputs.n }}"}
    """, "in.yaml": "n: 5\n"}, name="ws")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, out, err = cli(["-C", "../ws", "--state-dir", "state", "run", "missions/m.yaml",
                          "--inputs-file", "in.yaml", "--junit", "report.xml", "--format", "json"], elsewhere)
    assert (code, json.loads(out)["inputs"]) == (0, {"n": 5}), err
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    ws = tmp_path / "ws"
    assert (ws / "report.xml").is_file() and (ws / "state" / "ledger.db").is_file()


def test_no_workspace_is_a_usage_error(cli, tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = cli(["validate"], empty)
    assert (code, out) == (2, "")
    assert err == (
        f"error: no nexusmon workspace at or above {empty.resolve()} (no nexusmon.yaml or missions/); "
        "run `nexusmon init` or pass -C DIR\n"
    )


@pytest.mark.parametrize(
    ("args", "last_line"),
    [
        (["plan"], "Error: Missing argument 'MISSION'."),
        (["bogus"], "Error: No such command 'bogus'."),
        (["validate", "--format", "xml"],
         "Error: Invalid value for '--format': 'xml' is not one of 'text', 'json', 'github'."),
        (["graph", "deploy", "--format", "png"],
         "Error: Invalid value for '--format': 'png' is not one of 'mermaid', 'dot'."),
        (["plan", "deploy", "--no-such-option"], "Error: No such option"),
    ],
    ids=["missing-argument", "unknown-command", "bad-validate-format", "bad-graph-format", "unknown-option"],
)
def test_usage_errors_exit_2_without_traceback(root, cli, args, last_line) -> None:
    code, out, err = cli(args, root)
    assert (code, out) == (2, "")
    assert err.splitlines()[-1].startswith(last_line)
    assert "Traceback" not in err


def test_version(cli, tmp_path) -> None:
    assert cli(["--version"], tmp_path) == (0, f"nexusmon, version {__version__}\n", "")


def test_version_as_a_real_process(nexusmon_process, tmp_path) -> None:
    code, out, err = nexusmon_process(["--version"], cwd=tmp_path)
    assert (code, out, err) == (0, f"nexusmon, version {__version__}\n", "")


def test_usage_error_as_a_real_process(root, nexusmon_process) -> None:
    code, out, err = nexusmon_process(["plan", "deploy", "-i", "x"], cwd=root)
    assert (code, out) == (2, "")
    assert err == "error: -i expects name=value, got 'x'\n"


def test_graph_mermaid_keeps_quotes_angle_brackets_and_entity_codes_as_text(make_workspace, tmp_path, cli) -> None:
    root = make_workspace(tmp_path, {"missions/odd.yaml": """
        mission: odd
        objective: ids Mermaid would read as markup
        tasks:
          t:
            matrix: {v: ['<b>x</b>', 'say "hi" & go', 'issue #35;']}
            worker: noop
        """})
    code, out, err = cli(["graph", "odd"], root)
    assert (code, err) == (0, "")
    assert '  t0["t[#lt;b#gt;x#lt;/b#gt;]"]' in out.splitlines()
    assert '  t1["t[say #quot;hi#quot; #amp; go]"]' in out.splitlines()
    assert '  t2["t[issue #35;35;]"]' in out.splitlines()  # '#', then the text "35;"
