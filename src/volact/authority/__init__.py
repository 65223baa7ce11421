"""The vendor's activation authority: root key, issued keys, host-key and MAK activation.

Parts, core first (adapters import the core, never the reverse):

* :mod:`~volact.authority.rules` — sans-I/O decisions (key limits, one activation
  per machine, refusal codes) and the documents to sign;
* :mod:`~volact.authority.ratelimit` — sans-I/O token buckets;
* :mod:`~volact.authority.vault` — the home directory and the vendor key file;
* :mod:`~volact.authority.db` — the SQLAlchemy store (SQLite or PostgreSQL), its
  locking discipline and in-place schema migrations;
* :mod:`~volact.authority.activation` — :class:`Authority`, which HTTP and file
  commands share;
* :mod:`~volact.authority.api` — the FastAPI app; :mod:`~volact.authority.service`
  — uvicorn with workers.

Nothing here imports :mod:`volact.host` or :mod:`volact.client`.
"""
