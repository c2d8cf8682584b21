"""MBMS key management (TS 33.246) and our compact profile: key IDs, MRK/MUK, MSK/MTK
messages, the compact key request, and the MGV-F rules."""
