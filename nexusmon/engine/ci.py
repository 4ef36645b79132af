"""CI renderings of a run document: JUnit XML and a markdown summary."""

from __future__ import annotations

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
