"""GBA (TS 33.220), 3G AKA (TS 33.102), Milenage (TS 35.206) and HTTP Digest AKA (RFC 3310).

Sans-I/O: every function takes bytes (and an injected ``rng`` where randomness is needed) and
returns bytes or small frozen dataclasses.
"""
