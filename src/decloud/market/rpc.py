"""A JSON-RPC client for the market's reads: batches, over one kept-alive connection per thread.

Admitting an order takes several reads (the resource's owner, the consumed volume, the
owner's code and balance). Through web3.py each read costs about 1 ms of client time on the
project's machine, and its validation middleware asks the node for the chain id before every
call; raw JSON over `http.client` costs about 0.15 ms per round trip to a local node, and a
batch of a hundred reads about 2 ms. Reads only: nothing here signs or sends a transaction.
It connects to the node directly: unlike web3.py, it ignores proxy settings in the
environment (`HTTPS_PROXY`).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from decloud.chain.errors import ChainError, NodeUnavailable

_HEADERS = {"Content-Type": "application/json"}

RpcCall = tuple[str, list[Any]]
"""A JSON-RPC method and its params."""


class RpcError(ChainError):
    """The node answered a call with an error, or with something that is not JSON-RPC."""


class JsonRpc:
    """Sends JSON-RPC batches to one node; safe to share between threads."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a JSON-RPC URL must be http(s)://host[:port][/path], not {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._timeout = timeout
        self._local = threading.local()

    def call(self, method: str, params: list[Any]) -> Any:
        return self.batch([(method, params)])[0]

    def batch(self, calls: Sequence[RpcCall]) -> list[Any]:
        """The results of `calls`, in order, from one round trip; an `RpcError` if the node
        refused any of them."""
        if not calls:
            return []
        body = json.dumps([
            {"jsonrpc": "2.0", "id": index, "method": method, "params": params}
            for index, (method, params) in enumerate(calls)
        ]).encode()  # fmt: skip
        answers = self._post(body)
        if not isinstance(answers, list):
            raise RpcError(f"the node refused the batch: {_error_text(answers)}")
        by_id = {answer.get("id"): answer for answer in answers if isinstance(answer, dict)}
        return [_result(by_id.get(index), method) for index, (method, _) in enumerate(calls)]

    def _post(self, body: bytes) -> Any:
        """POST on this thread's connection. A node may close an idle kept-alive connection
        at any time: the request is then sent once more on a new one, which is safe because
        every call the market makes is a read."""
        try:
            try:
                payload = self._send(body)
            except ConnectionError:
                payload = self._send(body)
        except (OSError, http.client.HTTPException) as error:
            raise NodeUnavailable(f"the chain node is unreachable: {error}") from error
        try:
            return json.loads(payload)
        except ValueError as error:
            raise RpcError("the chain node answered something that is not JSON") from error

    def _send(self, body: bytes) -> bytes:
        connection = self._connection()
        try:
            connection.request("POST", self._path, body, _HEADERS)
            response = connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise
        if response.status != 200:
            raise NodeUnavailable(f"the chain node answered HTTP {response.status}")
        return payload

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            connection = kind(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
        return connection


def _result(answer: dict[str, Any] | None, method: str) -> Any:
    if answer is None:
        raise RpcError(f"the chain node did not answer a {method} of the batch")
    if "error" in answer:
        raise RpcError(f"the chain node refused a {method}: {_error_text(answer)}")
    return answer.get("result")


def _error_text(answer: Any) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        return str(error.get("message", error))
    return str(answer)[:200]
