"""One-off studies: each script prints a table; the measured output is kept in results/ (performance:
results/bench/<name>.txt; the Byzantine figures over seeds: results/byzantine/)."""
