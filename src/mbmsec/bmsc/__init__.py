"""BM-SC (TS 33.246): services, registrations, MSK/MTK scheduler, both key management profiles
(compact MIKEY request, 3GPP HTTP + MSK push), MTK announcements. Sans-I/O: see
:class:`mbmsec.bmsc.core.BmscCore`."""
