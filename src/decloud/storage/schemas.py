"""The result store's API models, and the names of the HTTP headers it reads and writes.

An upload's body is the archive itself, streamed; what authorizes it travels in headers:
the CID of the archive and the worker's signed request (`decloud.service.auth`) over
`UploadRequest(taskid, cid)`, with its nonce and expiry.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from decloud.service.auth import RequestAuth
from decloud.service.types import AddressStr, Bytes32Str, SignatureStr, Uint256Str

SERVICE_NAME = "storage"
"""The service name signed requests must carry."""
UPLOAD = "upload"
"""The action an upload's signed request names."""

CID_HEADER = "X-Decloud-Cid"
SIGNER_HEADER = "X-Decloud-Signer"
NONCE_HEADER = "X-Decloud-Nonce"
EXPIRY_HEADER = "X-Decloud-Expiry"
SIGNATURE_HEADER = "X-Decloud-Signature"
RESULT_DIGEST_HEADER = "X-Decloud-Result-Digest"
"""On downloads: the canonical result digest of the archive's tree, 0x-hex."""
REPR_DIGEST_HEADER = "Repr-Digest"
"""On downloads: `sha-256=:<base64>:` of the archive's bytes (RFC 9530)."""
IPFS_PATH_HEADER = "X-Ipfs-Path"
"""On downloads: `/ipfs/<cid>`, as IPFS gateways announce what they serve."""


class UploadRequest(BaseModel):
    """What a worker signs to upload a task's result: the task, and the archive by CID."""

    taskid: Bytes32Str
    cid: str = Field(min_length=1, max_length=100, description="CID of the archive sent")


class UploadHeaders(BaseModel):
    """The headers of an upload: the archive's CID and the signed request over it."""

    x_decloud_cid: str = Field(min_length=1, max_length=100)
    x_decloud_signer: AddressStr
    x_decloud_nonce: Uint256Str
    x_decloud_expiry: int = Field(ge=0, lt=2**63)
    x_decloud_signature: SignatureStr

    @classmethod
    def of(cls, cid: str, auth: RequestAuth) -> UploadHeaders:
        return cls(
            x_decloud_cid=cid,
            x_decloud_signer=auth.signer,
            x_decloud_nonce=auth.nonce,
            x_decloud_expiry=auth.expiry,
            x_decloud_signature=auth.signature,
        )

    def auth(self) -> RequestAuth:
        return RequestAuth(
            signer=self.x_decloud_signer,
            nonce=self.x_decloud_nonce,
            expiry=self.x_decloud_expiry,
            signature=self.x_decloud_signature,
        )

    def as_http(self) -> dict[str, str]:
        """The headers as a client sends them."""
        return {
            CID_HEADER: self.x_decloud_cid,
            SIGNER_HEADER: self.x_decloud_signer,
            NONCE_HEADER: self.x_decloud_nonce,
            EXPIRY_HEADER: str(self.x_decloud_expiry),
            SIGNATURE_HEADER: self.x_decloud_signature,
        }


class TaskResult(BaseModel):
    """A task's result as stored: the archive, what checks it, and who uploaded it."""

    taskid: Bytes32Str
    cid: str = Field(description="CID of the archive, as `ipfs add` gives it (CIDv0)")
    url: str = Field(description="Where to download the archive, relative to the service")
    size: int = Field(description="Bytes of the archive")
    sha256: str = Field(description="sha256 of the archive, hex")
    result_digest: Bytes32Str = Field(description="Canonical result digest of its tree")
    worker: AddressStr = Field(description="The proven worker that uploaded it")
    uploaded_at: datetime


class StorageInfo(BaseModel):
    """The chain and hub uploads are signed for, and the store's limits."""

    service: str = SERVICE_NAME
    chain_id: int
    hub: AddressStr
    max_archive_bytes: int
