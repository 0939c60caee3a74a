"""The simulator: replay a cluster trace through the daemon's own placement and power code."""
