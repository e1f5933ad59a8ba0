from programledger.cli import main

main()
