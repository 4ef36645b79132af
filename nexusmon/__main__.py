"""`python -m nexusmon`: the `nexusmon` command."""

from nexusmon.entry import main

main()
