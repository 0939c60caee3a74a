"""`python -m coordinator` is `dormouse`."""

from coordinator.cli import main

main()
