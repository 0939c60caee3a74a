"""The pure domain: node and job state, snapshots, seqs, rollups, ingest routing."""
