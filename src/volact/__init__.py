"""volact: open volume activation.

A vendor's **authority** activates key management **hosts** on customers'
networks; hosts count the machines that ask them and, past a threshold, activate
the vendor's products on those machines (**clients**). Everything a client
accepts is signed in a chain rooted in the vendor's Ed25519 key.
"""

from __future__ import annotations

__version__ = "0.1.0"

# The embedding API (docs/embedding.md): what a vendor's product imports.
from volact.client.api import Activation, BackgroundSchedule, Status
from volact.client.srv import HostAddress
from volact.errors import VolactError
from volact.profile import ProductProfile
from volact.wire import LicenseState

__all__ = [
    "Activation",
    "BackgroundSchedule",
    "HostAddress",
    "LicenseState",
    "ProductProfile",
    "Status",
    "VolactError",
    "__version__",
]
