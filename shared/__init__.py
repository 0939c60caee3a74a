"""Code imported by both the agent and the coordinator: wire codec, topics, config, signing.

Everything in this package is pure (no sockets, no database, no subprocess), so the agent,
the coordinator and the simulator all run exactly the same code.
"""
