"""`volact mak`: MAK proxy activation (SPEC §8) — a folder of requests in one call.

``volact mak proxy --authority URL --in DIR --out DIR`` reads every MAK request
file in ``--in`` (written by ``volact client mak-request`` on machines that cannot
reach the vendor), sends them to the authority in one ``POST /v1/mak/batch``
(split only past the batch limit), and writes one response file per machine into
``--out`` under the request's file name, for ``volact client mak-apply``. It
holds no rule of its own: the authority decides each machine. It writes only
once every call is answered, and never into the ``--in`` folder.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from volact.authority.rules import BATCH_LIMIT
from volact.cli.common import EXIT_OK, add_json, emit_json, http_url
from volact.errors import ConfigurationError, TransportError, UsageError, VolactError
from volact.exchanges import MakRequest, MakResponse, dumps
from volact.files import write_atomic
from volact.text import printable

#: Request files larger than this are not MAK requests (they are a few hundred bytes).
MAX_REQUEST_BYTES = 64 * 1024
#: Files read from one --in folder at most.
MAX_FILES = 100_000


def register(groups: Any) -> None:
    parser: argparse.ArgumentParser = groups.add_parser(
        "mak",
        help="MAK proxy activation for machines that cannot reach the vendor",
        description="Activate a folder of MAK requests with the authority in one call.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    p = sub.add_parser("proxy", help="activate every MAK request in a folder in one call")
    p.add_argument("--authority", required=True, metavar="URL", help="the authority's URL")
    p.add_argument(
        "--in", dest="in_dir", required=True, type=Path, metavar="DIR",
        help="folder of MAK request files",
    )  # fmt: skip
    p.add_argument(
        "--out", dest="out_dir", required=True, type=Path, metavar="DIR",
        help="folder to write one response file per machine into",
    )  # fmt: skip
    p.add_argument(
        "--timeout", type=float, default=60.0, metavar="S", help="HTTP timeout (default 60 s)"
    )
    add_json(p)
    p.set_defaults(func=_proxy)


def read_requests(in_dir: Path) -> tuple[list[tuple[Path, MakRequest]], list[dict[str, str]]]:
    """(file, request) for each MAK request file; and the files skipped, with why."""
    if not in_dir.is_dir():
        raise ConfigurationError(f"--in {in_dir} is not a folder")
    found: list[tuple[Path, MakRequest]] = []
    skipped: list[dict[str, str]] = []
    for i, path in enumerate(sorted(in_dir.iterdir())):
        if i >= MAX_FILES:
            raise UsageError(f"--in holds more than {MAX_FILES} files; split it")
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            if path.stat().st_size > MAX_REQUEST_BYTES:
                raise ConfigurationError("too large to be a MAK request")
            found.append((path, MakRequest.from_json(path.read_bytes())))
        except (VolactError, OSError) as exc:
            skipped.append({"file": path.name, "reason": str(exc)})
    return found, skipped


def post_batch(
    client: httpx.Client, authority: str, requests: list[MakRequest]
) -> list[MakResponse]:
    """One ``POST /v1/mak/batch``; the answers in order, or raise saying why not."""
    url = authority.rstrip("/") + "/v1/mak/batch"
    try:
        resp = client.post(url, json={"requests": [r.to_json() for r in requests]})
    except (httpx.InvalidURL, UnicodeError) as exc:
        # Neither is an HTTPError: httpx refuses the URL, or the host name cannot
        # be encoded when connecting.
        raise UsageError(f"--authority {authority!r} is a malformed URL ({exc})") from exc
    except httpx.HTTPError as exc:
        raise TransportError(f"cannot reach the authority at {url}: {exc}") from exc
    if resp.status_code != 200:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text[:200]
        raise TransportError(f"the authority refused the batch ({resp.status_code}): {detail}")
    try:
        results = resp.json()["results"]
        answers = [MakResponse.from_json(r) for r in results]
    except (ValueError, KeyError, TypeError) as exc:
        raise TransportError(f"the authority's answer is malformed: {exc}") from exc
    if len(answers) != len(requests):
        raise TransportError(
            f"the authority answered {len(answers)} of {len(requests)} requests"
        )
    for req, ans in zip(requests, answers, strict=True):
        if ans.cmid != req.cmid:
            raise TransportError("the authority's answers are out of order")
    return answers


def _refuse_same_folder(in_dir: Path, out_dir: Path) -> None:
    """Refuse --out naming the --in folder (by another path, a symlink, a mount...)."""
    same = in_dir.resolve() == out_dir.resolve()
    if not same and in_dir.is_dir() and out_dir.is_dir():
        same = os.path.samefile(in_dir, out_dir)
    if same:
        raise UsageError(
            f"--out {out_dir} is the --in folder: the responses would overwrite the "
            "requests (they have the same file names); give another --out folder"
        )


def _refuse_overwriting_requests(found: list[tuple[Path, MakRequest]], out_dir: Path) -> None:
    """Refuse if a response would replace a request file (a link into --out)."""
    for path, _ in found:
        target = out_dir / path.name
        if target.exists() and os.path.samefile(target, path):
            raise UsageError(
                f"--out {target} is the request file {path} itself: the response "
                "would overwrite it; give another --out folder"
            )


def _proxy(args: argparse.Namespace) -> int:
    http_url(args.authority, "--authority")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise UsageError(f"--timeout takes a number of seconds > 0, not {args.timeout:g}")
    _refuse_same_folder(args.in_dir, args.out_dir)
    found, skipped = read_requests(args.in_dir)
    if not found:
        raise ConfigurationError(f"no MAK request files in {args.in_dir}")
    _refuse_overwriting_requests(found, args.out_dir)
    # Every call first, then the files: a call that fails (past the first 1000)
    # leaves --out untouched. The calls already answered are not lost: the
    # authority charges nothing again for a machine it has activated.
    answered: list[tuple[Path, MakRequest, MakResponse]] = []
    with httpx.Client(timeout=args.timeout) as client:
        for start in range(0, len(found), BATCH_LIMIT):
            chunk = found[start : start + BATCH_LIMIT]
            try:
                answers = post_batch(client, args.authority, [r for _, r in chunk])
            except TransportError as exc:
                if not answered:
                    raise
                raise TransportError(
                    f"{exc} (after {len(answered)} of {len(found)} requests were answered; "
                    "no response file was written: run it again, machines already "
                    "activated are not charged twice)"
                ) from exc
            answered.extend(
                (path, req, ans) for (path, req), ans in zip(chunk, answers, strict=True)
            )
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create --out {args.out_dir}: {exc.strerror}") from exc
    results: list[dict[str, Any]] = []
    for path, req, ans in answered:
        write_atomic(args.out_dir / path.name, dumps(ans))
        results.append(
            {
                "file": path.name,
                "cmid": str(req.cmid),
                "status": "activated" if ans.confirmation else ans.error_code,
                "detail": ans.error_detail,
            }
        )
    counts = Counter(r["status"] for r in results)
    activated = counts.pop("activated", 0)
    summary = {
        "requests": len(found),
        "activated": activated,
        "refused": sum(counts.values()),
        "refused_by_code": dict(counts),
        "skipped": skipped,
        "results": results,
        "out": str(args.out_dir),
    }
    if args.json:
        emit_json(summary)
    else:
        refused = ", ".join(f"{n} {code}" for code, n in sorted(counts.items()))
        sys.stdout.write(
            f"{len(found)} request(s): {activated} activated"
            f"{f', refused: {refused}' if refused else ''}; "
            f"responses in {args.out_dir}\n"
        )
        for s in skipped:
            sys.stdout.write(printable(f"skipped {s['file']}: {s['reason']}") + "\n")
    return EXIT_OK

