"""The `dormouse` command line: one module per noun; no daemon, MQTT or HTTP imports."""
