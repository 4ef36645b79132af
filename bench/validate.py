"""Front-end speed: start-up, `validate` of 500 missions, `plan` of a 2,000-task mission.

Usage: python bench/validate.py [--rounds 5] [--budget 60] [--limit 150] [--keep]

Every case runs the real `nexusmon` executable as a subprocess (best and median
of N rounds after one warm-up) and must exit 0.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common import (
    BenchTimeout,
    Stats,
    banner,
    ms,
    nexusmon_argv,
    print_table,
    run_timed,
    sample,
    temp_workspace,
    verdict,
    write,
)

SEED = 20240601
MISSIONS = 500
BIG_TASKS = 2000
BIG = "big"

RUNES = {
    "runes/fetch.yaml": """\
rune: fetch
version: 1
description: Download a file and check it
inputs:
  url: {type: string}
  dest: {type: string, default: fetched.bin}
tasks:
  download: {run: "curl -fsSL {{ inputs.url }} -o {{ inputs.dest }}"}
  verify: {needs: [download], run: "sha256sum {{ inputs.dest }}"}
outputs:
  path: "{{ inputs.dest }}"
""",
    "runes/build.yaml": """\
rune: build
version: 1
description: Compile and test one target
inputs:
  target: {type: string, default: all}
  jobs: {type: integer, default: 4}
tasks:
  compile: {run: "make -j{{ inputs.jobs }} {{ inputs.target }}"}
  test: {needs: [compile], run: "make test TARGET={{ inputs.target }}"}
  package: {needs: [test], worker: noop}
""",
    "runes/notify.yaml": """\
rune: notify
version: 1
description: Post a message
inputs:
  channel: {type: string, default: ops}
  message: {type: string}
tasks:
  post: {run: "echo [{{ inputs.channel }}] {{ inputs.message }}"}
""",
}

MISSION_HEAD = """\
mission: {mid}
objective: Benchmark mission {n} ({kind})
category: {category}
inputs:
  tag: {{type: string, default: v1.{n}.0, description: Release tag}}
  target: {{type: string, enum: [staging, prod], default: staging}}
  dry: {{type: boolean, default: false}}
  shards: {{type: integer, default: 3}}
env:
  LANG: C.UTF-8
  RELEASE: "{{{{ inputs.tag }}}}-{{{{ inputs.target }}}}"
tasks:
"""

SCRIPTS = [
    "echo building {{ inputs.tag }} for {{ inputs.target }}",
    "git log --oneline {{ inputs.tag }}..HEAD | wc -l",
    "python -m pytest -q --shard {{ inputs.shards }}",
    "tar czf dist/{{ mission.id }}-{{ inputs.tag }}.tgz build/",
    "test -d build && ls build | head -n {{ inputs.shards }}",
    "printf '%s\\n' {{ env.RELEASE }} > dist/release.txt",
]


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    cwd: Path
    target: float | None


def mission_text(n: int, rng: random.Random) -> str:
    """One realistic mission: 5-15 tasks, needs, templates, rune calls, now and then a matrix."""
    kinds = ["forge", "coin", "library", "sanctuary"]
    lines = [MISSION_HEAD.format(mid=f"m{n:03d}", n=n, kind="generated", category=kinds[n % 4])]
    ids: list[str] = []
    for i in range(rng.randint(5, 15)):
        tid = f"t{i:02d}"
        lines.append(task_text(tid, ids, rng))
        ids.append(tid)
    return "".join(lines)


def task_text(tid: str, earlier: Sequence[str], rng: random.Random) -> str:
    needs = rng.sample(list(earlier), k=min(len(earlier), rng.randint(0, 2))) if earlier else []
    head = f"  {tid}:\n" + (f"    needs: [{', '.join(needs)}]\n" if needs else "")
    roll = rng.random()
    if roll < 0.08:
        url = "https://example.com/{{ inputs.tag }}.tgz"
        return head + f"    uses: fetch@1\n    with: {{url: \"{url}\"}}\n"
    if roll < 0.14:
        return head + "    uses: build\n    with: {target: \"{{ inputs.target }}\", jobs: 2}\n"
    if roll < 0.18:
        return head + "    uses: notify@1\n    with: {message: \"released {{ inputs.tag }}\"}\n"
    if roll < 0.24:
        return head + ("    matrix: {py: ['3.10', '3.11', '3.12'], os: [linux, macos]}\n"
                       "    run: echo test on {{ matrix.os }} with python {{ matrix.py }}\n")
    body = head + f"    run: {_yaml_str(rng.choice(SCRIPTS))}\n"
    if needs and rng.random() < 0.3:
        body += f"    env: {{UPSTREAM: \"{{{{ tasks.{needs[0]}.status }}}}\"}}\n"
    if rng.random() < 0.1:
        body += "    if: not inputs.dry\n"
    return body


def _yaml_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def big_mission_text(tasks: int, rng: random.Random) -> str:
    """A layered DAG of `tasks` tasks: fan-out from hubs, fan-in to joins, templated scripts."""
    width = 50
    lines = [MISSION_HEAD.format(mid=BIG, n=0, kind="2,000 tasks", category="forge")]
    layers: list[list[str]] = []
    for n in range(tasks):
        layer = n // width
        if layer == len(layers):
            layers.append([])
        tid = f"n{n:04d}"
        lines.append(big_task_text(tid, layers[layer - 1] if layer else [], n % width, rng))
        layers[layer].append(tid)
    return "".join(lines)


def big_task_text(tid: str, previous: Sequence[str], column: int, rng: random.Random) -> str:
    if not previous:
        needs: list[str] = []
    elif column == 0:
        needs = list(previous)  # a join: fan-in of the whole previous layer
    elif column < 10:
        needs = [previous[0]]  # fan-out from the previous join
    else:
        needs = rng.sample(list(previous), k=rng.randint(1, 3))
    text = f"  {tid}:\n" + (f"    needs: [{', '.join(needs)}]\n" if needs else "")
    if column == 0:
        return text + "    worker: noop\n"
    script = f"echo {tid} {{{{ inputs.tag }}}} {{{{ mission.id }}}} {{{{ inputs.target }}}}"
    if needs and column % 4 == 0:
        script += f" {{{{ tasks.{needs[0]}.outputs.stdout }}}}"
    return text + f"    run: {_yaml_str(script)}\n"


# The public key of RFC 8032's first Ed25519 test vector: valid, and nobody's.
RFC8032_KEY = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

RULES = [
    ("{worker: shell, run_matches: '\\b(kubectl|terraform)\\s+apply{i}\\b'}", "{rank: A}"),
    ("{run_matches: 'rm\\s+-rf\\s+/{i}(\\s|$)'}", "{deny: refusing to wipe /{i}}"),
    ("{worker: [llm, http]}", "{require_capabilities: [COMPANION]}"),
    ("{mission: 'deploy-*', task: 'ship*'}", "{rank: B}"),
    ("{task: 'n0{i}*'}", "{rank: C}"),
    ("{category: sanctuary, rank_at_least: C}", "{approvers: [alice]}"),
    ("{has_secrets: true}", "{rank: B}"),
    ("{uses: 'danger-*'}", "{deny: no dangerous runes}"),
    ("{run_matches: 'echo n1{i}\\d\\d '}", "{rank: C}"),
    ("{worker: shell, run_matches: 'curl .*\\|\\s*(ba)?sh'}", "{deny: no curl pipes}"),
]


def policy_text(rules: int = 20) -> str:
    """~20 rules using every `when` key; some raise ranks in the big mission, none deny it."""
    lines = ["policy: bench-rules\nrules:\n"]
    for i in range(rules):
        when, then = RULES[i % len(RULES)]
        lines.append(f"  - id: rule-{i:02d}\n    when: {when.replace('{i}', str(i))}\n"
                     f"    then: {then.replace('{i}', str(i))}\n")
    lines.append("gates: {E: auto, D: auto, C: review, B: review, A: approve, S: approve}\n")
    operator = f"{{name: alice, public_key: '{RFC8032_KEY}', may_approve: [A, S]}}"
    lines.append(f"operators:\n  - {operator}\n")
    return "".join(lines)


def build_workspaces(base: Path) -> dict[str, Path]:
    """many: the 500 missions; big: the 2,000-task mission; governed: big + policy; full: all."""
    rng = random.Random(SEED)
    names = ("many", "big", "governed", "full")
    ws = {name: base / name for name in names}
    for root in ws.values():
        for rel, text in RUNES.items():
            write(root, rel, text)
    for n in range(MISSIONS):
        text = mission_text(n, rng)
        write(ws["many"], f"missions/m{n:03d}.yaml", text)
        write(ws["full"], f"missions/m{n:03d}.yaml", text)
    big_text = big_mission_text(BIG_TASKS, rng)
    for name in ("big", "governed", "full"):
        write(ws[name], f"missions/{BIG}.yaml", big_text)
    write(ws["governed"], "policies/bench.yaml", policy_text())
    return ws


def cases(exe: Sequence[str], ws: dict[str, Path]) -> list[Case]:
    plan = ("plan", BIG, "--format", "json")
    return [
        Case("nexusmon --version", (*exe, "--version"), ws["big"], 0.100),
        Case(f"validate ({MISSIONS} missions)", (*exe, "validate"), ws["many"], 1.5),
        Case(f"plan {BIG} ({BIG_TASKS} tasks) --format json", (*exe, *plan), ws["big"], 1.0),
        Case(f"plan {BIG} under a 20-rule policy", (*exe, *plan), ws["governed"], 1.0),
        Case(f"plan {BIG} beside {MISSIONS} missions", (*exe, *plan), ws["full"], None),
    ]


def measure(case: Case, args: argparse.Namespace) -> Stats | None:
    """Best-of-N timings, or None when one run outlived `--limit` seconds."""
    banner(f"{case.name}: up to {args.rounds} rounds")
    try:
        return sample(lambda: run_timed(case.argv, case.cwd, timeout=args.limit), args.rounds,
                      args.budget)
    except BenchTimeout:
        return None


def row(case: Case, stats: Stats | None, limit: float) -> list[str]:
    target = "-" if case.target is None else ms(case.target)
    if stats is None:
        return [case.name, "0", f"> {limit:.0f} s", f"> {limit:.0f} s", target, "MISS"]
    ok = "info" if case.target is None else verdict(stats.best <= case.target)
    return [case.name, str(stats.n), ms(stats.best), ms(stats.median), target, ok]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per case, roughly")
    parser.add_argument("--limit", type=float, default=150.0, help="seconds before a run is killed")
    parser.add_argument("--keep", action="store_true", help="keep the generated workspaces")
    args = parser.parse_args()
    exe = nexusmon_argv()
    banner(f"nexusmon executable: {' '.join(exe)}")
    with temp_workspace("validate", keep=args.keep) as base:
        ws = build_workspaces(base)
        results = [(case, measure(case, args)) for case in cases(exe, ws)]
    print_table(["case", "n", "best", "median", "target", "ok?"],
                [row(c, s, args.limit) for c, s in results])


if __name__ == "__main__":
    main()
