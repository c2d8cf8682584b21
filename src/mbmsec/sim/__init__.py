"""Discrete-event simulator: virtual clock, seeded lossy links, N UEs against one BM-SC."""
