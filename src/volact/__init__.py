"""volact: open volume activation.

A vendor's **authority** activates key management **hosts** on customers'
networks; hosts count the machines that ask them and, past a threshold, activate
the vendor's products on those machines (**clients**). Everything a client
accepts is signed in a chain rooted in the vendor's Ed25519 key.
"""

from __future__ import annotations

# No runtime imports: every `volact` command imports this package before any of its
# code can catch a Ctrl-C (volact/__main__.py), and so does every embedding product.
TYPE_CHECKING = False
__version__ = "0.1.0"

# The embedding API (docs/embedding.md): what a vendor's product imports. It is
# loaded on first use (PEP 562) so that `import volact.host...` and every CLI
# command do not pay for the client's HTTP and DNS libraries.
_EXPORTS = {
    "Activation": "volact.client.api",
    "BackgroundSchedule": "volact.client.schedule",
    "Status": "volact.client.api",
    "HostAddress": "volact.client.srv",
    "VolactError": "volact.errors",
    "ProductProfile": "volact.profile",
    "LicenseState": "volact.wire",
}

if TYPE_CHECKING:
    from typing import Any

    from volact.client.api import Activation, Status
    from volact.client.schedule import BackgroundSchedule
    from volact.client.srv import HostAddress
    from volact.errors import VolactError
    from volact.profile import ProductProfile
    from volact.wire import LicenseState


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'volact' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
