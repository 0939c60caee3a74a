"""dormouse as Slurm's power brain: hostlists, sacct history, and the programs Slurm calls."""
