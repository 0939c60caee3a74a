"""The dormouse coordinator: ingest, node registry, placement, power policy, store, CLI."""

__version__ = "0.1.0"
