"""The CID kubo gives a file with `ipfs add` and its default settings.

Result archives are named by the CID an IPFS node would give them, so that anyone can pin,
fetch or check an archive with standard IPFS tools. kubo's defaults (its "unixfs-v0-2015"
import profile) are:

| setting | value | flag reproducing it |
|---|---|---|
| CID version | 0 (base58btc `Qm...`, codec dag-pb) | `--cid-version=0` |
| hash | sha2-256 | `--hash=sha2-256` |
| chunker | fixed 262144-byte chunks | `--chunker=size-262144` |
| leaves | dag-pb UnixFS `File` nodes, not raw blocks | `--raw-leaves=false` |
| layout | balanced, at most 174 links per node | no `--trickle`; `Import.UnixFSFileMaxLinks` |

A file of at most one chunk is a single leaf; a longer one is a balanced tree whose leaves
all sit at the same depth: leaves are grouped 174 at a time under File nodes, those 174 at
a time, and so on until one root remains. A File node lists, besides its links, the file
bytes below each link (`blocksizes`) and their sum (`filesize`); a link carries the
serialized size of the whole subtree below it (`Tsize`).

`UnixfsFileHasher` builds that tree while the bytes stream by: it holds one chunk and, per
level of the tree, the links of the node being filled, so its memory stays constant (a few
MiB at most, even for terabytes).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from multiformats import CID, multihash, varint

RESULT_LINK_PREFIX = "/ipfs/"
"""A task is finalized with the IPFS path of its result archive, `/ipfs/<cid>`: the link
requesters read on-chain and the X-Ipfs-Path the store answers with."""

CHUNK_SIZE = 262_144
"""kubo's default chunker, `size-262144`."""
MAX_LINKS = 174
"""kubo's default `Import.UnixFSFileMaxLinks`: the most children a File node has."""
READ_SIZE = 1 << 20
"""How much of a file is read at a time when hashing it."""

_UNIXFS_FILE = 2
"""`Data.Type` of a UnixFS file node."""
_WIRE_VARINT = 0
_WIRE_BYTES = 2


class InvalidCid(ValueError):
    """A string that is not the CID of a result archive."""


@dataclass(frozen=True)
class Link:
    """A child of a File node: its multihash, the serialized bytes of its subtree (`Tsize`)
    and the file bytes it holds."""

    multihash: bytes
    tsize: int
    filesize: int


class UnixfsFileHasher:
    """Computes a file's kubo CID from its bytes, given in pieces of any size."""

    def __init__(self) -> None:
        self._chunk = bytearray()
        self._levels: list[list[Link]] = [[]]
        """`_levels[0]` holds leaves, `_levels[k]` nodes with leaves k levels below: the
        links of the node still being filled at each level of the tree."""
        self._finished: str | None = None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next bytes of the file."""
        if self._finished is not None:
            raise ValueError("the CID was already computed: use a new hasher")
        view = memoryview(data)
        while view:
            if not self._chunk and len(view) >= CHUNK_SIZE:
                self._push(0, _leaf(view[:CHUNK_SIZE]))  # a whole chunk: hashed in place
                view = view[CHUNK_SIZE:]
                continue
            room = CHUNK_SIZE - len(self._chunk)
            self._chunk += view[:room]
            view = view[room:]
            if len(self._chunk) == CHUNK_SIZE:
                self._add_leaf()

    def cid(self) -> str:
        """The CID of all bytes fed: the root of the balanced tree (CIDv0, base58btc)."""
        if self._finished is None:
            if self._chunk or not any(self._levels):
                self._add_leaf()
            self._finished = _to_cid(self._root().multihash)
        return self._finished

    def _add_leaf(self) -> None:
        """Turn the pending chunk into a leaf (the empty file too has one, of no bytes)."""
        leaf = _leaf(self._chunk)
        self._chunk.clear()
        self._push(0, leaf)

    def _push(self, level: int, link: Link) -> None:
        """Add a child at `level`; a node that reaches MAX_LINKS children is complete and
        becomes a child one level up."""
        if level == len(self._levels):
            self._levels.append([])
        children = self._levels[level]
        children.append(link)
        if len(children) == MAX_LINKS:
            self._levels[level] = []
            self._push(level + 1, _branch(children))

    def _root(self) -> Link:
        """Close the partial node of each level, bottom up, until a single link is left:
        the tree kubo's balanced builder produces for this many chunks."""
        level = 0
        while True:
            higher = any(self._levels[level + 1 :])
            children = self._levels[level]
            if not higher and len(children) == 1:
                return children[0]
            if children:
                self._levels[level] = []
                self._push(level + 1, _branch(children))
            level += 1


def file_cid(path: Path) -> str:
    """The CID of a file, read in READ_SIZE pieces."""
    hasher = UnixfsFileHasher()
    with path.open("rb") as file:
        while block := file.read(READ_SIZE):
            hasher.update(block)
    return hasher.cid()


def bytes_cid(data: bytes) -> str:
    """The CID of a file holding `data`."""
    hasher = UnixfsFileHasher()
    hasher.update(data)
    return hasher.cid()


def normalize_cid(text: str) -> str:
    """The CIDv0 form of a CID of a dag-pb, sha2-256 object, given as CIDv0 or CIDv1 in any
    multibase: two spellings of one archive must reach the same stored file."""
    try:
        cid = CID.decode(text)
    except Exception as error:  # multiformats raises several unrelated types
        raise InvalidCid(f"{text!r} is not a CID: {error}") from error
    if cid.codec.name != "dag-pb" or cid.hashfun.name != "sha2-256":
        raise InvalidCid(
            f"{text!r} is a {cid.codec.name} / {cid.hashfun.name} CID; result archives are "
            "dag-pb / sha2-256 (what `ipfs add` gives by default)"
        )
    return str(cid.set(version=0, base="base58btc"))


def _leaf(chunk: bytes | bytearray | memoryview) -> Link:
    """A leaf: a dag-pb node without links whose data is UnixFS {File, chunk, filesize}.

    The empty file's only leaf has no Data field at all, as kubo writes it. The leaf is
    hashed in three pieces so the chunk is never copied into a larger buffer.
    """
    unixfs_head = _varint_field(1, _UNIXFS_FILE)
    if chunk:
        unixfs_head += _bytes_header(2, len(chunk))
    unixfs_tail = _varint_field(3, len(chunk))
    node_head = _bytes_header(1, len(unixfs_head) + len(chunk) + len(unixfs_tail)) + unixfs_head
    digest = hashlib.sha256(node_head)
    digest.update(chunk)
    digest.update(unixfs_tail)
    size = len(node_head) + len(chunk) + len(unixfs_tail)
    return Link(_multihash(digest.digest()), tsize=size, filesize=len(chunk))


def _branch(children: list[Link]) -> Link:
    """A File node over `children`: links first, then UnixFS {File, filesize, blocksizes}
    (dag-pb's canonical order; kubo always writes a link's Name, empty here, and Tsize)."""
    filesize = sum(child.filesize for child in children)
    unixfs = _varint_field(1, _UNIXFS_FILE) + _varint_field(3, filesize)
    unixfs += b"".join(_varint_field(4, child.filesize) for child in children)
    node = b"".join(_bytes_field(2, _pb_link(child)) for child in children)
    node += _bytes_field(1, unixfs)
    tsize = len(node) + sum(child.tsize for child in children)
    return Link(_multihash(hashlib.sha256(node).digest()), tsize=tsize, filesize=filesize)


def _pb_link(child: Link) -> bytes:
    return _bytes_field(1, child.multihash) + _bytes_field(2, b"") + _varint_field(3, child.tsize)


def _multihash(sha256: bytes) -> bytes:
    return bytes(multihash.wrap(sha256, "sha2-256"))


def _to_cid(node_multihash: bytes) -> str:
    return str(CID("base58btc", 0, "dag-pb", node_multihash))


def _varint_field(number: int, value: int) -> bytes:
    return bytes(varint.encode(number << 3 | _WIRE_VARINT)) + bytes(varint.encode(value))


def _bytes_header(number: int, length: int) -> bytes:
    return bytes(varint.encode(number << 3 | _WIRE_BYTES)) + bytes(varint.encode(length))


def _bytes_field(number: int, payload: bytes) -> bytes:
    return _bytes_header(number, len(payload)) + payload
