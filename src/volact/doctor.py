"""The doctor's walk: checks in the order a request travels, stopping at the first break.

``volact client doctor`` and ``volact host doctor`` list their checks as
:class:`Step` s (a name and a function). :func:`walk` runs them in order; a check
passes by returning what it found, and breaks by raising :class:`Broken` with what
is wrong and the fix. The first break ends the walk (later links depend on it) and
is named in the report; the rest are listed as not checked. A volact error escaping
a check breaks it too, with its own message. The checks themselves (sockets, DNS,
files) live in :mod:`volact.client.doctor` and :mod:`volact.host.doctor`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from volact.errors import VolactError


class Broken(Exception):
    """A check found a broken link: ``detail`` says what, ``fix`` what to do."""

    def __init__(self, detail: str, fix: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fix = fix


@dataclass(frozen=True)
class Step:
    """One check of the chain."""

    name: str  #: stable identifier, e.g. ``srv_answer``
    title: str  #: what is checked, for people
    run: Callable[[], str]  #: returns what it found; raises Broken when the link is broken
    fix: str = "see the message"  #: the fix when a volact error (not Broken) escapes


@dataclass(frozen=True)
class Outcome:
    """What happened to one step."""

    name: str  #: the step's identifier
    title: str  #: the step's title
    status: str  #: ``ok``, ``broken`` or ``not_checked``
    detail: str  #: what was found
    fix: str | None  #: the fix, for a broken step

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "status": self.status,
                "detail": self.detail, "fix": self.fix}  # fmt: skip


def walk(steps: Sequence[Step]) -> list[Outcome]:
    """Run ``steps`` in order until one breaks."""
    out: list[Outcome] = []
    broken = False
    for step in steps:
        if broken:
            out.append(Outcome(step.name, step.title, "not_checked", "", None))
            continue
        try:
            out.append(Outcome(step.name, step.title, "ok", step.run(), None))
        except Broken as exc:
            out.append(Outcome(step.name, step.title, "broken", exc.detail, exc.fix))
            broken = True
        except VolactError as exc:
            out.append(Outcome(step.name, step.title, "broken", str(exc), step.fix))
            broken = True
    return out


def report(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """The ``--json`` object: ``ok``, ``first_broken`` (name or null), ``checks``."""
    first = next((o for o in outcomes if o.status == "broken"), None)
    return {
        "ok": first is None,
        "first_broken": first.name if first else None,
        "fix": first.fix if first else None,
        "checks": [o.to_json() for o in outcomes],
    }


def text(outcomes: Sequence[Outcome]) -> str:
    """The report for people: one line per check, the fix under the broken one."""
    mark = {"ok": "ok  ", "broken": "FAIL", "not_checked": "  - "}
    lines = []
    for o in outcomes:
        lines.append(f"{mark[o.status]} {o.title}" + (f": {o.detail}" if o.detail else ""))
        if o.fix:
            lines.append(f"     fix: {o.fix}")
    first = next((o for o in outcomes if o.status == "broken"), None)
    lines.append("all checks passed" if first is None else f"first broken link: {first.name}")
    return "\n".join(lines)


__all__ = ["Broken", "Outcome", "Step", "report", "text", "walk"]
