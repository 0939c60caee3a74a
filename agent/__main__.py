"""`python -m agent` is `dormouse-agent`."""

from agent.main import main

main()
