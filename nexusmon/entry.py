"""The ``nexusmon`` console script: imports the CLI under a Ctrl-C guard.

pip's wrapper imports the module it names before calling anything, so the
guard must sit in a module with nothing to import: a Ctrl-C at any moment of
start-up ends the command with status 130 and no traceback.
"""

import sys


def main() -> None:
    try:
        from nexusmon.cli.main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    run()
