"""The only asyncio / socket code: aiohttp servers (BSF, BM-SC), UDP endpoints, UE runners.

Each adapter drives a sans-I/O role from the core: it reads the clock, feeds ``now`` in and
turns the role's request/response dataclasses or datagrams into socket I/O.
"""
