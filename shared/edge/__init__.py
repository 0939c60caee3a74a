"""The edge both programs share (typer/rich output, sd_notify, host facts): not pure."""
