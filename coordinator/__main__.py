"""`python -m coordinator` is `dormouse`."""

from coordinator.main import main

main()
