"""posbench's model core, inference engine, sweeps, results and reports."""
