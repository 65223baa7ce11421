"""Two Ed25519 libraries, measured side by side: libsodium (PyNaCl) and OpenSSL (cryptography).

For the choice in docs/architecture.md ("Crypto"): CPU per signature (the host signs
one ticket per grant), per verification (a client verifies a license and a ticket
per renewal), the cost of importing each library in a fresh interpreter (every
`volact client` command pays it), and the size each installs. Rounds are
interleaved (A, B, A, B, ...) so that other load on the machine hits both alike;
the figures are min / median / max over the rounds.

    .venv/bin/python bench/crypto_libs.py [--rounds 7] [--calls 5000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from nacl.bindings import crypto_sign, crypto_sign_open, crypto_sign_seed_keypair

MESSAGE = bytes(range(86))  # a ticket body's length
SEED = bytes(range(32))


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def import_ms(statement: str) -> float:
    """Wall time of a fresh interpreter running ``statement`` (start-up included)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True)
    return (time.perf_counter() - start) * 1e3


def tree_mb(package: str) -> float:
    module = __import__(package)
    root = Path(module.__file__).parent
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) / 1e6


def summary(values: list[float]) -> str:
    return f"{min(values):8.1f} {statistics.median(values):8.1f} {max(values):8.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args(argv)

    ossl_key = Ed25519PrivateKey.from_private_bytes(SEED)
    public = ossl_key.public_key().public_bytes_raw()
    ossl_pub = Ed25519PublicKey.from_public_bytes(public)
    sodium_key = crypto_sign_seed_keypair(SEED)[1]
    signature = ossl_key.sign(MESSAGE)
    assert crypto_sign(MESSAGE, sodium_key)[:64] == signature  # same bytes, both ways
    crypto_sign_open(signature + MESSAGE, public)

    cases: dict[str, Callable[[], float]] = {
        "sign µs, libsodium": lambda: per_call_us(
            lambda: crypto_sign(MESSAGE, sodium_key), args.calls
        ),
        "sign µs, OpenSSL": lambda: per_call_us(lambda: ossl_key.sign(MESSAGE), args.calls),
        "verify µs, libsodium": lambda: per_call_us(
            lambda: crypto_sign_open(signature + MESSAGE, public), args.calls
        ),
        "verify µs, OpenSSL (key object made per call)": lambda: per_call_us(
            lambda: Ed25519PublicKey.from_public_bytes(public).verify(signature, MESSAGE),
            args.calls,
        ),
        "verify µs, OpenSSL (key object kept)": lambda: per_call_us(
            lambda: ossl_pub.verify(signature, MESSAGE), args.calls
        ),
        "python -c pass, ms": lambda: import_ms("pass"),
        "import for verify, libsodium, ms": lambda: import_ms("import nacl.bindings"),
        "import for verify, OpenSSL, ms": lambda: import_ms(
            "import cryptography.hazmat.primitives.asymmetric.ed25519"
        ),
        "import for PEM keys, OpenSSL, ms": lambda: import_ms(
            "import cryptography.hazmat.primitives.asymmetric.ed25519, "
            "cryptography.hazmat.primitives.serialization"
        ),
    }
    results: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, case in cases.items():
            results[name].append(case())
    print(f"{'figure':48} {'min':>8} {'median':>8} {'max':>8}   ({args.rounds} rounds)")
    for name, values in results.items():
        print(f"{name:48} {summary(values)}")
    print(f"installed size: nacl {tree_mb('nacl'):.1f} MB, cryptography "
          f"{tree_mb('cryptography'):.1f} MB (both also need cffi + pycparser)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
