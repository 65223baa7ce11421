"""``python -m volact``: the same as the ``volact`` command."""

from volact.cli import run

run()
