"""Publishing the host in DNS (RFC 2136 + TSIG), one concept a module.

Sans-I/O (values and decisions; no sockets, files or clock):

- :mod:`.names`: zones, the host's parent domain, which addresses are publishable;
- :mod:`.servers`: the DNS servers that take updates (``ADDR[:PORT]``);
- :mod:`.tsig`: the TSIG key, parsed from BIND's key-file text;
- :mod:`.settings`: the host's DNS settings (``dns.json``'s content);
- :mod:`.plans`: which rdatas one update deletes and adds, and what was published;
- :mod:`.outcomes`: how an update's result (or failure) is described;
- :mod:`.schedule`: when each domain is due again (24 h, exponential backoff).

Adapters (files, the DNS server, the clock):

- :mod:`.files`: ``dns.json``, the key file and the service label in the host home;
- :mod:`.state`: ``dns-state.json``, what was published where and the last outcome;
- :mod:`.updates`: one update to one server, every failure an outcome;
- :mod:`.publisher`: ``run_once`` (the CLI) and ``publish_loop`` (beside the server);
- :mod:`.status`: the summary ``volact host status`` shows.

This package's ``__init__`` imports nothing, so the sans-I/O modules load no I/O.
"""
