"""`python -m nexusmon`: the `nexusmon` command."""

from nexusmon.entry import drop_current_directory, main

drop_current_directory()
main()
