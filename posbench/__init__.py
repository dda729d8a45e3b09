"""posbench: compare positional-encoding schemes (RoPE, NoPE, hybrid, RePo) on long-context tasks."""
