"""dormouse-agent: samples a server, publishes telemetry, runs jobs, suspends the host."""

__version__ = "0.1.0"
