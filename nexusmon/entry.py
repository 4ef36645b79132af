"""The ``nexusmon`` console script: imports the CLI under a Ctrl-C guard.

pip's wrapper imports the module it names before calling anything, so the
guard must sit in a module with nothing to import: a Ctrl-C at any moment of
start-up ends the command with status 130 and no traceback.
"""

import os
import sys


def drop_current_directory() -> None:
    """Take the current directory off ``sys.path``, where ``python -m`` put it first.

    A workspace file named like a standard or installed module (xml.py, click.py) would
    otherwise replace it for nexusmon itself. As ``python -P`` does; nexusmon's own
    modules are found through its package.
    """
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]


def main() -> None:
    try:
        from nexusmon.cli.main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    run()
