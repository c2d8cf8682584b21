"""MIKEY (RFC 3830, RFC 4563, RFC 6043 PRF): sans-I/O codec, PSK crypto and replay protection."""
