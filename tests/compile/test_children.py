"""`validate` checks the missions that `mission` tasks run: they exist, and none runs itself
through a chain of child runs."""

from __future__ import annotations

PING = """
mission: ping
objective: calls pong
tasks:
  call: {worker: mission, with: {mission: pong}}
"""

PONG = """
mission: pong
objective: calls ping back
tasks:
  prep: {worker: noop}
  back: {worker: mission, needs: [prep], with: {mission: missions/ping.yaml}}
"""


def test_a_cycle_of_child_missions_is_located_at_the_task_that_closes_it(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/ping.yaml": PING, "missions/pong.yaml": PONG})
    assert validate(root) == [
        "missions/ping.yaml:4:43: error: mission cycle: ping -> pong -> ping (task 'call' runs mission 'pong')"
    ]


def test_a_mission_running_itself_is_a_cycle(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/loop.yaml": """
        mission: loop
        objective: runs itself
        tasks:
          again: {worker: mission, with: {mission: loop}}
        """})
    assert validate(root) == [
        "missions/loop.yaml:4:44: error: mission cycle: loop -> loop (task 'again' runs mission 'loop')"
    ]


def test_a_three_mission_cycle_reads_in_call_order(make_workspace, validate, tmp_path) -> None:
    files = {
        f"missions/{name}.yaml": f"mission: {name}\nobjective: x\ntasks:\n  go: {{worker: mission, with: {{mission: {child}}}}}\n"
        for name, child in (("a", "b"), ("b", "c"), ("c", "a"))
    }
    [error] = validate(make_workspace(tmp_path, files))
    cycle = error.split("mission cycle: ")[1].split(" (")[0].split(" -> ")
    assert len(cycle) == 4 and cycle[0] == cycle[-1]
    runs = {"a": "b", "b": "c", "c": "a"}
    assert all(runs[parent] == child for parent, child in zip(cycle, cycle[1:])), error


def test_an_unknown_child_mission_has_a_did_you_mean(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {"missions/pong.yaml": PONG.replace("missions/ping.yaml", "hellp"),
                                     "missions/ping.yaml": PING.replace("pong", "hello"),
                                     "missions/hello.yaml": "mission: hello\nobjective: x\ntasks:\n  t: {worker: noop}\n"})
    assert validate(root) == [
        "missions/pong.yaml:5:58: error: task 'back' runs unknown mission 'hellp' (did you mean 'hello'?)"
    ]


def test_a_templated_child_is_left_to_run_time_and_a_chain_without_a_cycle_is_fine(
    make_workspace, validate, tmp_path
) -> None:
    root = make_workspace(tmp_path, {
        "missions/top.yaml": """
            mission: top
            objective: x
            inputs:
              target: {type: string, default: nosuch}
            tasks:
              a: {worker: mission, with: {mission: "{{ inputs.target }}"}}
              b: {worker: mission, with: {mission: leaf}}
              c: {worker: mission, with: {mission: leaf}}
            """,
        "missions/leaf.yaml": "mission: leaf\nobjective: x\ntasks:\n  t: {worker: noop}\n",
    })
    assert validate(root) == []


def test_a_rune_task_running_a_mission_is_checked_in_the_rune(make_workspace, validate, tmp_path) -> None:
    root = make_workspace(tmp_path, {
        "runes/relay.yaml": """
            rune: relay
            version: 1
            tasks:
              hop: {worker: mission, with: {mission: start}}
            """,
        "missions/start.yaml": "mission: start\nobjective: x\ntasks:\n  r: {uses: relay@1}\n",
    })
    assert validate(root) == [
        "runes/relay.yaml:4:42: error: mission cycle: start -> start (task 'r.hop' runs mission 'start')"
    ]
