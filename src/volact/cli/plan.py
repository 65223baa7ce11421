"""``volact plan``: the capacity planner (its code is in :mod:`volact.cli.simulate`)."""

from __future__ import annotations

from volact.cli.simulate import register_plan as register

__all__ = ["register"]
