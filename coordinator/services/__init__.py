"""The use cases the CLI and the daemon share: each opens what it needs of the store."""
