"""volact: open volume activation.

A vendor's **authority** activates key management **hosts** on customers'
networks; hosts count the machines that ask them and, past a threshold, activate
the vendor's products on those machines (**clients**). Everything a client
accepts is signed in a chain rooted in the vendor's Ed25519 key.
"""

from __future__ import annotations

__version__ = "0.1.0"
