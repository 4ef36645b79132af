"""`python -m nexusmon`: the `nexusmon` command."""

import sys

try:
    from nexusmon.cli.main import main
except KeyboardInterrupt:  # Ctrl-C while starting up: no traceback, as in nexusmon.cli.main
    sys.stderr.write("interrupted\n")
    sys.exit(130)

main()
