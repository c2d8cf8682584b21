"""``mbmsec demo``: the whole system on one host, played through a scripted scenario.

- :mod:`.scenario`: the demo's configuration and its timeline of phases.
- :mod:`.report`: counters collected while it runs, the final report (text and JSON), verdict.
- :mod:`.progress`: the progress display (one rewritten line on a TTY, periodic lines otherwise).
- :mod:`.capture`: application-layer tap that turns the exchanged datagrams and HTTP messages
  into a pcap file (:mod:`mbmsec.pcap`).
- :mod:`.keylog`: the key log text form (documented in docs/demo.md).
- :mod:`.orchestrate`: starts the real servers and clients over loopback sockets and plays the
  scenario; :mod:`.cli` registers the sub-command.
"""
