"""`python -m agent` is `dormouse-agent`."""

from agent.cli import main

main()
