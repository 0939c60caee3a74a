"""The long-running parts of `dormouse run`: wiring, loops, MQTT, commands, HTTP."""
