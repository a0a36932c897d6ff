"""One-off performance studies: each script prints a table; the measured output is kept as results/bench/<name>.txt."""
