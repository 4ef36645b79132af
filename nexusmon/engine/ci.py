"""CI renderings of a run document: JUnit XML and a markdown summary."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nexusmon.util.markdown import code_span, escaped_char, one_line

_ICONS = {
    "succeeded": "✅", "cached": "♻️", "skipped": "⏭️", "failed": "❌", "cancelled": "⛔",
    "awaiting_approval": "⏸️", "blocked": "🚫",
}


# What XML 1.0 cannot hold at all, not even escaped: most C0 controls, surrogates, U+FFFE/F.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(value: Any) -> str:
    """``value`` as text XML can carry: a terminal colour code shows as ``\\x1b``."""
    return _NOT_XML.sub(escaped_char, str(value))


#: The end of a failed task's output that its JUnit `failure` carries (characters).
LOG_TAIL = 64 * 1024


def _failure_text(doc: dict[str, Any], task_id: str, error: str, log: str) -> str:
    """The error, then the end of the task's captured output (what a CI page shows)."""
    if not log:
        return error
    if len(log) > LOG_TAIL:
        earlier = len(log) - LOG_TAIL
        log = (f"[{earlier} earlier characters: nexusmon logs {doc['run_id']} {task_id}]\n"
               + log[earlier:])
    return f"{error}\n\n{log}" if error else log


def junit_xml(doc: dict[str, Any], logs: Mapping[str, str] | None = None) -> bytes:
    """One `testcase` per task (named by task id); failed tasks carry a `failure` element
    holding the error and the end of the task's output (``logs``: task id -> output)."""
    import xml.etree.ElementTree as ET  # only `run --junit` needs it

    tasks: list[dict[str, Any]] = doc["tasks"]
    failures = sum(1 for t in tasks if t["status"] == "failed")
    skipped = sum(1 for t in tasks if t["status"] not in ("succeeded", "cached", "failed"))
    total = sum(float(t.get("duration_s") or 0) for t in tasks)
    suites = ET.Element("testsuites", name="nexusmon", tests=str(len(tasks)), failures=str(failures))
    suite = ET.SubElement(
        suites, "testsuite", name=str(doc["mission"]), tests=str(len(tasks)), failures=str(failures),
        errors="0", skipped=str(skipped), time=f"{total:.3f}", id=str(doc["run_id"]),
    )
    for t in tasks:
        case = ET.SubElement(suite, "testcase", name=_xml_text(t["id"]), classname=str(doc["mission"]),
                             time=f"{float(t.get('duration_s') or 0):.3f}")
        if t["status"] == "failed":
            error = _xml_text(t.get("error") or "")
            failure = ET.SubElement(case, "failure", message=error or "failed", type="failed")
            failure.text = _failure_text(doc, t["id"], error, _xml_text((logs or {}).get(t["id"], "")))
        elif t["status"] not in ("succeeded", "cached"):
            ET.SubElement(case, "skipped", message=_xml_text(f"{t['status']}: {t.get('error') or ''}".strip(": ")))
    return bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True))


#: The most one run's step summary may take (GitHub drops a step's whole summary over 1 MiB).
SUMMARY_LIMIT = 512 * 1024


def markdown_summary(doc: dict[str, Any], limit: int = SUMMARY_LIMIT) -> str:
    """A GitHub step summary: status line, task counts and a table of tasks, cut short (with
    a line saying so) when the rows would pass ``limit`` bytes. It ends with a blank line, so
    that what the next step appends does not join the table."""
    tasks: list[dict[str, Any]] = doc["tasks"]
    counts = Counter(t["status"] for t in tasks)
    lines = [
        f"### nexusmon `{doc['mission']}` — {doc['status']}",
        "",
        f"Run `{doc['run_id']}`" + (f": {one_line(str(doc['error']))}" if doc.get("error") else ""),
        "",
        f"{len(tasks)} task{'s' if len(tasks) != 1 else ''}: "
        + ", ".join(f"{n} {status}" for status, n in counts.items()),
        "",
        "| task | status | rank | decision | attempts | duration |",
        "|---|---|---|---|---|---|",
    ]
    size = sum(len(line.encode()) + 1 for line in lines)
    for shown, t in enumerate(tasks):
        icon = _ICONS.get(t["status"], "")
        row = (f"| {code_span(t['id'])} | {icon} {t['status']} | {t.get('rank') or ''} | {t.get('decision') or ''} "
               f"| {t.get('attempts') or 0} | {float(t.get('duration_s') or 0):.2f}s |")
        size += len(row.encode()) + 1
        if size > limit:
            lines += ["", (f"{len(tasks) - shown} more tasks are not listed (the summary is capped at "
                          f"{limit // 1024} KiB): `nexusmon show {doc['run_id']}` lists them all.")]
            break
        lines.append(row)
    return "\n".join(lines) + "\n\n"


def write_reports(doc: dict[str, Any], junit: str | None, environ: Mapping[str, str],
                  logs: Mapping[str, str] | None = None) -> list[str]:
    """Write the JUnit report (when asked for) and append the step summary (when
    ``GITHUB_STEP_SUMMARY`` is set); one warning per file that could not be written.
    ``logs`` holds the captured output of failed tasks, for the JUnit report.

    A report that cannot be written never changes how the run ended. The JUnit
    report's folder is created (CI configurations name one in advance, as
    `reports/junit.xml`); the step summary file is GitHub's and must exist.
    """
    warnings = []
    if junit:
        try:
            Path(junit).parent.mkdir(parents=True, exist_ok=True)
            Path(junit).write_bytes(junit_xml(doc, logs))
        except OSError as exc:
            warnings.append(f"cannot write the JUnit report to {junit}: {exc.strerror or exc}")
    summary_file = environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        try:
            with open(summary_file, "a", encoding="utf-8") as fh:
                fh.write(markdown_summary(doc))
        except OSError as exc:
            warnings.append(f"cannot append the run summary to GITHUB_STEP_SUMMARY file "
                            f"{summary_file}: {exc.strerror or exc}")
    return warnings
