"""ZMQ notifications like Bitcoin Core's `-zmqpubhashblock` / `-zmqpubsequence`.

Messages are [topic, body, 4-byte little-endian per-topic sequence]: `hashblock` with
the block hash in RPC byte order; `sequence` with hash + `C`/`D` (block connected /
disconnected) or txid + `A`/`R` + 8-byte little-endian mempool sequence (tx added /
removed). Publishing never blocks the node (PUB drops when nobody listens).
"""
from __future__ import annotations


class Publisher:
    def __init__(self, url: str):
        import zmq
        self._zmq = zmq
        self.sock = zmq.Context.instance().socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(url)
        self.counters: dict[bytes, int] = {}

    def _send(self, topic: bytes, body: bytes) -> None:
        n = self.counters.get(topic, 0)
        self.counters[topic] = n + 1
        try:
            self.sock.send_multipart([topic, body, n.to_bytes(4, "little")], self._zmq.NOBLOCK)
        except self._zmq.Again:
            pass

    def block_connected(self, block_hash: str) -> None:
        self._send(b"hashblock", bytes.fromhex(block_hash))
        self._send(b"sequence", bytes.fromhex(block_hash) + b"C")

    def block_disconnected(self, block_hash: str) -> None:
        self._send(b"sequence", bytes.fromhex(block_hash) + b"D")

    def tx_added(self, txid: str, mempool_sequence: int) -> None:
        self._send(b"sequence", bytes.fromhex(txid) + b"A" + mempool_sequence.to_bytes(8, "little"))

    def tx_removed(self, txid: str, mempool_sequence: int) -> None:
        self._send(b"sequence", bytes.fromhex(txid) + b"R" + mempool_sequence.to_bytes(8, "little"))

    def close(self) -> None:
        self.sock.close()
