"""mbmsec: MBMS key distribution (BM-SC key server and UE client) over MIKEY and GBA."""

__version__ = "0.1.0"
