from wfrunner.cli.app import main

main()
