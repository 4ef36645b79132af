from nexusmon.cli.main import main

main()
