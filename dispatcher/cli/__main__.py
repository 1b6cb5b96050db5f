"""`python -m dispatcher.cli`: the same command as `dispatcher`."""

from dispatcher.cli.main import main

main()
