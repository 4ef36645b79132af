"""The `template` worker's `file:`: an error in an included or imported template is located in
that file and line; includes stay inside the workspace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

MISSION = """
mission: notes
objective: render a template file
tasks:
  render:
    worker: template
    with: {file: templates/main.j2, path: out/notes.md, vars: {title: Notes, items: [a, b]}}
"""


def failure(cli, root: Path) -> str:
    code, out, err = cli(["run", "notes", "--format", "json"], root)
    assert code == 1, err
    task = json.loads(out)["tasks"][0]
    assert task["status"] == "failed"
    assert not (root / "out/notes.md").exists()
    return str(task["error"])


def workspace(make_workspace, tmp_path: Path, files: dict[str, str]) -> Path:
    root: Path = make_workspace(tmp_path, {"missions/notes.yaml": MISSION, **files})
    return root


def test_includes_and_imports_render(make_workspace, cli, tmp_path) -> None:
    root = workspace(make_workspace, tmp_path, {
        "templates/main.j2": '{% import "templates/macros.j2" as m %}# {{ title }}\n{% include "templates/part.j2" %}',
        "templates/part.j2": "{% for i in items %}{{ m.bullet(i) }}{% endfor %}",
        "templates/macros.j2": "{% macro bullet(x) %}- {{ x }}\n{% endmacro %}",
    })
    code, _, err = cli(["run", "notes"], root)
    assert code == 0, err
    assert (root / "out/notes.md").read_text() == "# Notes\n- a\n- b\n"


@pytest.mark.parametrize(("part", "error"), [
    ("one\ntwo\nhello {{ nme }}\n", "templates/part.j2:3:10: error: 'nme' is undefined"),
    ("one\n{% if %}\n", "templates/part.j2:2:1: error: Expected an expression, got 'end of statement block'"),
    ("{{ title.nope }}", "templates/part.j2:1:10: error: 'str object' has no attribute 'nope'"),
    ("{{ ''.__class__ }}",
     ("templates/part.j2:1:1: error: template refused by the sandbox: access to attribute '__class__' of 'str' "
     "object is unsafe.")),
    ("{{ 1 + 'a' }}", "templates/part.j2:1:1: error: template error: unsupported operand type(s) for +: 'int' and 'str'"),
])
def test_an_error_in_an_included_file_names_that_file_and_line(make_workspace, cli, tmp_path, part, error) -> None:
    root = workspace(make_workspace, tmp_path, {
        "templates/main.j2": '# {{ title }}\n\n{% include "templates/part.j2" %}\n', "templates/part.j2": part})
    assert failure(cli, root) == error


def test_an_error_in_an_imported_macro_names_the_macro_file(make_workspace, cli, tmp_path) -> None:
    root = workspace(make_workspace, tmp_path, {
        "templates/main.j2": '{% import "templates/macros.j2" as m %}\n{{ m.bullet(title) }}\n',
        "templates/macros.j2": "{% macro bullet(x) %}\n- {{ x }} {{ y }}\n{% endmacro %}\n",
    })
    assert failure(cli, root) == "templates/macros.j2:2:14: error: 'y' is undefined"


def test_an_error_in_the_file_itself_names_it(make_workspace, cli, tmp_path) -> None:
    root = workspace(make_workspace, tmp_path, {"templates/main.j2": "# {{ title }}\n{{ itemz }}\n"})
    assert failure(cli, root) == "templates/main.j2:2:4: error: 'itemz' is undefined"


@pytest.mark.parametrize(("include", "error"), [
    ("templates/missing.j2", "template file 'templates/missing.j2' not found"),
    ("../outside.j2", "path '../outside.j2' is outside the workspace"),
    ("/etc/hostname", "path '/etc/hostname' is absolute; give a path inside the workspace"),
    ("templates/link.j2", "path 'templates/link.j2' is outside the workspace"),
])
def test_an_include_that_cannot_be_read_is_located_at_the_include(make_workspace, cli, tmp_path,
                                                                  include, error) -> None:
    root = workspace(make_workspace, tmp_path, {"templates/main.j2": f'# {{{{ title }}}}\n{{% include "{include}" %}}\n'})
    (tmp_path / "outside.j2").write_text("secret\n")
    (root / "templates/link.j2").symlink_to(tmp_path / "outside.j2")
    assert failure(cli, root) == f"templates/main.j2:2:1: error: {error}"


def test_values_render_as_in_mission_templates(make_workspace, cli, tmp_path) -> None:
    root = workspace(make_workspace, tmp_path, {
        "templates/main.j2": "{{ title }} {{ true }} [{{ none }}] {{ items }} {{ {'k': 1} }}\n"})
    code, _, err = cli(["run", "notes"], root)
    assert code == 0, err
    assert (root / "out/notes.md").read_text() == 'Notes true [] ["a", "b"] {"k": 1}\n'


@pytest.mark.parametrize(("body", "error"), [
    ("{{ 'x' * 100000000 }}", "template refused by the sandbox: '*' would make a value larger than 10000000"),
    ("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
     "template refused by the sandbox: template ran longer than 2 s"),
])
def test_a_file_template_keeps_the_sandbox_limits(make_workspace, cli, tmp_path, body, error) -> None:
    root = workspace(make_workspace, tmp_path, {"templates/main.j2": f"# {{{{ title }}}}\n{body}\n"})
    assert failure(cli, root).startswith(f"templates/main.j2:2:1: error: {error}")


def test_a_path_that_names_a_directory_is_refused_and_nothing_is_written_outside(
    make_workspace, cli, tmp_path: Path,
) -> None:
    root = make_workspace(tmp_path, {"missions/dirs.yaml": """
        mission: dirs
        objective: template paths that name directories
        tasks:
          root: {worker: template, with: {text: hi, path: .}}
          slash: {worker: template, with: {text: hi, path: out/}}
        """})
    code, _, err = cli(["validate"], root)
    assert (code, err.splitlines()[:2]) == (1, [
        ("missions/dirs.yaml:4:51: error: task 'root': with.path '.' names a directory; the template "
        "worker writes a file (paths are relative to the workspace root)"),
        ("missions/dirs.yaml:5:52: error: task 'slash': with.path 'out/' names a directory; the "
        "template worker writes a file (paths are relative to the workspace root)"),
    ])
    (root / "missions/dirs.yaml").write_text(
        "mission: dirs\nobjective: a rendered path that is the root\ntasks:\n"
        "  root: {worker: template, with: {text: hi, path: \"{{ '.' }}\"}}\n", encoding="utf-8")
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, _ = cli(["run", "dirs", "--format", "json"], root)
    assert (code, json.loads(out)["tasks"][0]["error"]) == (1, "path '.' is a directory; give a file path")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary file beside the root
