"""The ``volact`` command's entry point: ``python -m volact`` and the console script.

Its first statement makes a Ctrl-C while the CLI loads end the process at once with
exit status 130 and one line, instead of a KeyboardInterrupt traceback from
whichever import it interrupted; :func:`volact.cli.run` then hands SIGINT back to
Python and turns a KeyboardInterrupt anywhere in the command into the same exit.
Only the interpreter's own start-up, and importing the ``volact`` package (which
imports nothing), come before it.
"""

import _signal  # type: ignore[import-not-found]  # built in: loads nothing, unlike signal
import os


def _interrupted(signum: int, frame: object) -> None:
    os.write(2, b"volact: error: interrupted\n")
    os._exit(130)


# Unless SIGINT is ignored (a shell starts background jobs so): then it stays ignored.
if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _interrupted)

from volact.cli import run  # noqa: E402  (after the handler: this import is what it guards)

__all__ = ["run"]

if __name__ == "__main__":
    run()
