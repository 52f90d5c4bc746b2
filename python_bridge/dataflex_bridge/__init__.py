"""DataFlex bridge: the Python sidecar that the TypeScript orchestrator drives over ZeroMQ.

Run it as ``python -m dataflex_bridge --endpoint ipc://...``. The wire format is in ``wire``, the
server and the handler API (``Op``, ``OpError``, ``CallContext``) in ``server``; docs/protocol.md
is the contract. Nothing heavy (torch, llamafactory) is imported here.
"""

__version__ = "0.1.0"
