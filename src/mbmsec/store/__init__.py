"""Stores: protocols (``protocols.py`` and siblings) with SQLite, in-memory and Redis backends.

Store methods are synchronous and async-free so that the sans-I/O core can call them; the
net layer may batch or pipeline them.
"""
