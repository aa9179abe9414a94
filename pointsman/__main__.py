from pointsman.cli.main import main

main()
