"""Test-only fault injection for the reliability tests (docs/reliability.md); never set in a real run.

``DATAFLEX_TEST_FAULT=<kind>@<step>[:<rank>]`` makes ``train_steps`` fail just before it trains global step ``<step>``
(with ``:<rank>``, on that rank of a torchrun launch alone; else on every rank):
``raise`` raises a Python exception, ``exit`` ends the process with ``os._exit(137)`` (what the OOM killer's
SIGKILL looks like to a parent that reads exit codes), ``kill`` sends the process SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import sys

ENV = "DATAFLEX_TEST_FAULT"
_SPEC = re.compile(r"(raise|exit|kill)@([1-9][0-9]*)(?::([0-9]+))?")


class InjectedFault(RuntimeError):
    """The exception of ``raise`` (code ``op_failed``, like any other exception in an op)."""


def planned() -> tuple[str, int] | None:
    """The fault asked for in the environment for this process, or None; a malformed value is an error (a test
    typo)."""
    spec = os.environ.get(ENV)
    if not spec:
        return None
    m = _SPEC.fullmatch(spec)
    if m is None:
        raise ValueError(f"{ENV}={spec!r}: expected raise@<step>, exit@<step> or kill@<step>, then :<rank> or nothing")
    if m.group(3) is not None and int(m.group(3)) != int(os.environ.get("RANK", "0")):
        return None
    return m.group(1), int(m.group(2))


def before_step(fault: tuple[str, int] | None, step: int) -> None:
    """Trigger ``fault`` if ``step`` (the global step about to be trained) is its step."""
    if fault is None or fault[1] != step:
        return
    kind = fault[0]
    print(f"dataflex_bridge: {ENV}: injecting '{kind}' before step {step}", file=sys.stderr, flush=True)
    if kind == "raise":
        raise InjectedFault(f"injected fault before step {step} ({ENV})")
    if kind == "exit":
        os._exit(137)
    os.kill(os.getpid(), signal.SIGKILL)
