"""CI renderings of a run document: JUnit XML and a markdown summary."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

_ICONS = {
    "succeeded": "✅", "cached": "♻️", "skipped": "⏭️", "failed": "❌", "cancelled": "⛔",
    "awaiting_approval": "⏸️", "blocked": "🚫",
}


def junit_xml(doc: dict[str, Any]) -> bytes:
    """One `testcase` per task (named by task id); failed tasks carry a `failure` element."""
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
        case = ET.SubElement(suite, "testcase", name=t["id"], classname=str(doc["mission"]),
                             time=f"{float(t.get('duration_s') or 0):.3f}")
        if t["status"] == "failed":
            failure = ET.SubElement(case, "failure", message=str(t.get("error") or "failed"), type="failed")
            failure.text = str(t.get("error") or "")
        elif t["status"] not in ("succeeded", "cached"):
            ET.SubElement(case, "skipped", message=f"{t['status']}: {t.get('error') or ''}".strip(": "))
    return bytes(ET.tostring(suites, encoding="utf-8", xml_declaration=True))


def markdown_summary(doc: dict[str, Any]) -> str:
    """A GitHub step summary: status line and a table of tasks."""
    lines = [
        f"### nexusmon `{doc['mission']}` — {doc['status']}",
        "",
        f"Run `{doc['run_id']}`" + (f": {doc['error']}" if doc.get("error") else ""),
        "",
        "| task | status | rank | decision | attempts | duration |",
        "|---|---|---|---|---|---|",
    ]
    for t in doc["tasks"]:
        icon = _ICONS.get(t["status"], "")
        lines.append(
            f"| `{t['id']}` | {icon} {t['status']} | {t.get('rank') or ''} | {t.get('decision') or ''} "
            f"| {t.get('attempts') or 0} | {float(t.get('duration_s') or 0):.2f}s |"
        )
    return "\n".join(lines) + "\n"


def write_reports(doc: dict[str, Any], junit: str | None, environ: Mapping[str, str]) -> list[str]:
    """Write the JUnit report (when asked for) and append the step summary (when
    ``GITHUB_STEP_SUMMARY`` is set); one warning per file that could not be written.

    A report that cannot be written never changes how the run ended.
    """
    warnings = []
    if junit:
        try:
            Path(junit).parent.mkdir(parents=True, exist_ok=True)
            Path(junit).write_bytes(junit_xml(doc))
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
