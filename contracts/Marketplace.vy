# pragma version ~=0.4.3
# pragma evm-version cancun
"""
@title decloud marketplace
@custom:contract-name Marketplace
@license Apache-2.0
@notice Where orders become deals: task categories, the EIP-712 hashing of
        the four order types, on-chain presign and close of orders, and
        `matchOrders`, which checks four compatible orders and asks the Hub
        to open the deal (the Hub locks the requester's payment and the
        workerpool owner's stake). Orders are signed in the hub's domain
        (name "decloud", version "1", verifyingContract = the Hub), so the
        Hub and the Marketplace form one signing domain.
@dev The Hub is split from the Marketplace to keep each within EIP-170's
     24,576 bytes of runtime code.
@custom:security Every check of `matchOrders` reverts with its own reason
                 naming the broken rule; a deal is recorded only once every
                 check passed, with no partial state.
"""

import signatures

interface IAppRegistry:
    def appInfo(app: address) -> (address, bool): view


interface IDatasetRegistry:
    def datasetOwner(dataset: address) -> address: view


interface IWorkerpoolRegistry:
    def workerpoolInfo(workerpool: address) -> (address, uint256, uint256): view


interface IHub:
    def openDeal(
        dealid: bytes32,
        deal_hash: bytes32,
        requester: address,
        payment: uint256,
        workerpool_owner: address,
        stake: uint256,
    ): nonpayable
    def owner() -> address: view


# The workerpool owner stakes this percent of the workerpool price per task
# (the Hub's POOL_STAKE_RATIO; both must agree).
POOL_STAKE_RATIO: constant(uint256) = 30
# Largest trust a request may ask for; keeps consensus arithmetic bounded.
MAX_TRUST: public(constant(uint256)) = 4_294_967_296
# Bit 0 of a tag asks for (or offers) a trusted execution environment.
TAG_TEE: constant(uint256) = 1
MAX_PARAMS: constant(uint256) = 4096

ORDER_PRESIGN: constant(uint8) = 0
ORDER_CLOSE: constant(uint8) = 1

APP_ORDER_TYPEHASH: constant(bytes32) = keccak256(
    "AppOrder(address app,uint256 appprice,uint256 volume,bytes32 tag,address datasetrestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
)
DATASET_ORDER_TYPEHASH: constant(bytes32) = keccak256(
    "DatasetOrder(address dataset,uint256 datasetprice,uint256 volume,bytes32 tag,address apprestrict,address workerpoolrestrict,address requesterrestrict,bytes32 salt)"
)
WORKERPOOL_ORDER_TYPEHASH: constant(bytes32) = keccak256(
    "WorkerpoolOrder(address workerpool,uint256 workerpoolprice,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address apprestrict,address datasetrestrict,address requesterrestrict,bytes32 salt)"
)
REQUEST_ORDER_TYPEHASH: constant(bytes32) = keccak256(
    "RequestOrder(address app,uint256 appmaxprice,address dataset,uint256 datasetmaxprice,address workerpool,uint256 workerpoolmaxprice,address requester,uint256 volume,bytes32 tag,uint256 category,uint256 trust,address beneficiary,address callback,string params,bytes32 salt)"
)


struct AppOrder:
    app: address
    appprice: uint256
    volume: uint256
    tag: bytes32
    datasetrestrict: address
    workerpoolrestrict: address
    requesterrestrict: address
    salt: bytes32


struct DatasetOrder:
    dataset: address
    datasetprice: uint256
    volume: uint256
    tag: bytes32
    apprestrict: address
    workerpoolrestrict: address
    requesterrestrict: address
    salt: bytes32


struct WorkerpoolOrder:
    workerpool: address
    workerpoolprice: uint256
    volume: uint256
    tag: bytes32
    category: uint256
    trust: uint256
    apprestrict: address
    datasetrestrict: address
    requesterrestrict: address
    salt: bytes32


struct RequestOrder:
    app: address
    appmaxprice: uint256
    dataset: address
    datasetmaxprice: uint256
    workerpool: address
    workerpoolmaxprice: uint256
    requester: address
    volume: uint256
    tag: bytes32
    category: uint256
    trust: uint256
    beneficiary: address
    callback: address
    params: String[MAX_PARAMS]
    salt: bytes32


# Same layout as the Hub's Deal: the Hub stores keccak256(abi_encode(Deal)).
struct Deal:
    app: address
    app_owner: address
    app_price: uint256
    dataset: address
    dataset_owner: address
    dataset_price: uint256
    workerpool: address
    workerpool_owner: address
    workerpool_price: uint256
    requester: address
    beneficiary: address
    callback: address
    category: uint256
    time_ref: uint256
    start_time: uint256
    trust: uint256
    tag: bytes32
    bot_first: uint256
    bot_size: uint256
    worker_stake: uint256
    scheduler_reward_ratio: uint256


struct Category:
    name: String[64]
    description: String[256]
    work_clock_time_ref: uint256


event CategoryCreated:
    category: indexed(uint256)
    name: String[64]
    description: String[256]
    work_clock_time_ref: uint256

event OrderPresigned:
    order_hash: indexed(bytes32)
    signer: indexed(address)

event OrderClosed:
    order_hash: indexed(bytes32)

event OrdersMatched:
    dealid: indexed(bytes32)
    app_order_hash: bytes32
    dataset_order_hash: bytes32
    workerpool_order_hash: bytes32
    request_order_hash: bytes32
    volume: uint256

event SchedulerNotice:
    workerpool: indexed(address)
    dealid: indexed(bytes32)

event DealCreated:
    dealid: indexed(bytes32)
    requester: indexed(address)
    workerpool: indexed(address)
    deal: Bytes[672]
    params: String[MAX_PARAMS]


# The hub that holds the money; also the EIP-712 verifying contract.
HUB: public(immutable(IHub))
APP_REGISTRY: public(immutable(IAppRegistry))
DATASET_REGISTRY: public(immutable(IDatasetRegistry))
WORKERPOOL_REGISTRY: public(immutable(IWorkerpoolRegistry))
# Categories by id; created by the hub's owner, never changed.
categories: public(HashMap[uint256, Category])
category_count: public(uint256)
# Volume already consumed per order digest; close sets it to the volume.
consumed: public(HashMap[bytes32, uint256])
# Order digest -> account that presigned it on-chain.
presigned: public(HashMap[bytes32, address])


@deploy
def __init__(
    hub_: IHub,
    app_registry_: IAppRegistry,
    dataset_registry_: IDatasetRegistry,
    workerpool_registry_: IWorkerpoolRegistry,
):
    """
    @param hub_ The Hub this marketplace opens deals in.
    @param app_registry_ Registry of applications.
    @param dataset_registry_ Registry of datasets.
    @param workerpool_registry_ Registry of workerpools.
    """
    HUB = hub_
    APP_REGISTRY = app_registry_
    DATASET_REGISTRY = dataset_registry_
    WORKERPOOL_REGISTRY = workerpool_registry_


# -------------------------------------------------------------- categories

@external
def createCategory(name: String[64], description: String[256], work_clock_time_ref: uint256) -> uint256:
    """
    @notice Creates a category of tasks (hub owner only).
    @param name Short name (XS, S, M, ...).
    @param description What tasks of the category are.
    @param work_clock_time_ref T in seconds; deadlines are multiples of it.
    @return uint256 The new category id (ids start at 0).
    """
    assert msg.sender == staticcall HUB.owner(), "category: caller is not the hub owner"
    assert work_clock_time_ref > 0, "category: zero time reference"
    assert work_clock_time_ref <= 10**8, "category: time reference too long"
    category: uint256 = self.category_count
    self.categories[category] = Category(name=name, description=description, work_clock_time_ref=work_clock_time_ref)
    self.category_count = category + 1
    log CategoryCreated(category=category, name=name, description=description, work_clock_time_ref=work_clock_time_ref)
    return category


# ------------------------------------------------------------------ orders

@external
@view
def hashAppOrder(order: AppOrder) -> bytes32:
    """
    @return bytes32 EIP-712 digest of an app order under the hub's domain.
    """
    return self._app_order_digest(order)


@external
@view
def hashDatasetOrder(order: DatasetOrder) -> bytes32:
    """
    @return bytes32 EIP-712 digest of a dataset order under the hub's domain.
    """
    return self._dataset_order_digest(order)


@external
@view
def hashWorkerpoolOrder(order: WorkerpoolOrder) -> bytes32:
    """
    @return bytes32 EIP-712 digest of a workerpool order under the hub's domain.
    """
    return self._workerpool_order_digest(order)


@external
@view
def hashRequestOrder(order: RequestOrder) -> bytes32:
    """
    @return bytes32 EIP-712 digest of a request order under the hub's domain.
    """
    return self._request_order_digest(order)


@external
@view
def verifySignature(signer: address, digest: bytes32, signature: Bytes[65]) -> bool:
    """
    @notice The signature rule of every order and authorization: a 65- or
            64-byte ECDSA signature by `signer`, an ERC-1271 approval when
            `signer` is a contract, or (empty signature) an on-chain presign.
    """
    return self._verify(signer, digest, signature)


@external
def manageAppOrder(order: AppOrder, operation: uint8):
    """
    @notice Presigns (operation 0) or closes (operation 1) an app order.
    @param order The order; the caller must own its app.
    @param operation ORDER_PRESIGN or ORDER_CLOSE.
    """
    owner: address = empty(address)
    tee: bool = False
    owner, tee = staticcall APP_REGISTRY.appInfo(order.app)
    self._manage_order(self._app_order_digest(order), order.volume, owner, operation)


@external
def manageDatasetOrder(order: DatasetOrder, operation: uint8):
    """
    @notice Presigns (operation 0) or closes (operation 1) a dataset order.
    @param order The order; the caller must own its dataset.
    @param operation ORDER_PRESIGN or ORDER_CLOSE.
    """
    owner: address = staticcall DATASET_REGISTRY.datasetOwner(order.dataset)
    self._manage_order(self._dataset_order_digest(order), order.volume, owner, operation)


@external
def manageWorkerpoolOrder(order: WorkerpoolOrder, operation: uint8):
    """
    @notice Presigns (operation 0) or closes (operation 1) a workerpool order.
    @param order The order; the caller must own its workerpool.
    @param operation ORDER_PRESIGN or ORDER_CLOSE.
    """
    owner: address = empty(address)
    worker_stake_ratio: uint256 = 0
    scheduler_reward_ratio: uint256 = 0
    owner, worker_stake_ratio, scheduler_reward_ratio = staticcall WORKERPOOL_REGISTRY.workerpoolInfo(order.workerpool)
    self._manage_order(self._workerpool_order_digest(order), order.volume, owner, operation)


@external
def manageRequestOrder(order: RequestOrder, operation: uint8):
    """
    @notice Presigns (operation 0) or closes (operation 1) a request order.
    @param order The order; the caller must be its requester.
    @param operation ORDER_PRESIGN or ORDER_CLOSE.
    """
    self._manage_order(self._request_order_digest(order), order.volume, order.requester, operation)


@internal
def _manage_order(digest: bytes32, volume: uint256, owner: address, operation: uint8):
    assert msg.sender == owner, "order: caller is not the owner"
    assert operation <= ORDER_CLOSE, "order: unknown operation"
    if operation == ORDER_PRESIGN:
        self.presigned[digest] = msg.sender
        log OrderPresigned(order_hash=digest, signer=msg.sender)
    else:
        self.consumed[digest] = max(volume, self.consumed[digest])
        log OrderClosed(order_hash=digest)


@internal
@view
def _app_order_digest(o: AppOrder) -> bytes32:
    # AppOrder is a static struct: its ABI encoding is its fields, in order.
    return signatures._typed_digest(HUB.address, keccak256(abi_encode(APP_ORDER_TYPEHASH, o)))


@internal
@view
def _dataset_order_digest(o: DatasetOrder) -> bytes32:
    return signatures._typed_digest(HUB.address, keccak256(abi_encode(DATASET_ORDER_TYPEHASH, o)))


@internal
@view
def _workerpool_order_digest(o: WorkerpoolOrder) -> bytes32:
    return signatures._typed_digest(HUB.address, keccak256(abi_encode(WORKERPOOL_ORDER_TYPEHASH, o)))


@internal
@view
def _request_order_digest(o: RequestOrder) -> bytes32:
    # The string field is hashed (EIP-712), so the struct is encoded field by field.
    return signatures._typed_digest(
        HUB.address,
        keccak256(
            concat(
                abi_encode(
                    REQUEST_ORDER_TYPEHASH,
                    o.app,
                    o.appmaxprice,
                    o.dataset,
                    o.datasetmaxprice,
                    o.workerpool,
                    o.workerpoolmaxprice,
                    o.requester,
                    o.volume,
                ),
                abi_encode(
                    o.tag, o.category, o.trust, o.beneficiary, o.callback, keccak256(o.params), o.salt
                ),
            )
        )
    )


@internal
@view
def _verify(signer: address, digest: bytes32, signature: Bytes[65]) -> bool:
    # An empty signature stands for an on-chain presign by the signer.
    if len(signature) == 0:
        return signer != empty(address) and self.presigned[digest] == signer
    return signatures._is_valid(signer, digest, signature)


@internal
@view
def _allowed(restriction: address, account: address) -> bool:
    """
    @dev A restriction is open (zero), names the account itself, or names a
         group contract that says the account is a member.
    """
    if restriction == empty(address) or restriction == account:
        return True
    if not restriction.is_contract:
        return False
    success: bool = False
    response: Bytes[32] = b""
    success, response = raw_call(
        restriction,
        abi_encode(account, method_id=method_id("isMember(address)")),
        max_outsize=32,
        is_static_call=True,
        revert_on_failure=False,
    )
    return success and len(response) == 32 and convert(response, uint256) == 1


@internal
@view
def _remaining(digest: bytes32, volume: uint256) -> uint256:
    consumed: uint256 = self.consumed[digest]
    if consumed >= volume:
        return 0
    return volume - consumed


# ---------------------------------------------------------------- matching

@external
def matchOrders(
    app_order: AppOrder,
    app_sign: Bytes[65],
    dataset_order: DatasetOrder,
    dataset_sign: Bytes[65],
    workerpool_order: WorkerpoolOrder,
    workerpool_sign: Bytes[65],
    request_order: RequestOrder,
    request_sign: Bytes[65],
) -> bytes32:
    """
    @notice Matches four compatible orders into a deal of `volume` tasks, the
            smallest remaining volume of the orders, and locks the
            requester's payment and the workerpool owner's stake.
            With no dataset (request names none) the dataset order is
            ignored and must be empty.
    @return bytes32 The deal id, keccak256(request digest ‖ volume of the
            request consumed before this deal).
    """
    time_ref: uint256 = self.categories[request_order.category].work_clock_time_ref
    assert request_order.category == workerpool_order.category, "match: category mismatch"
    assert time_ref > 0, "match: unknown category"
    assert request_order.trust <= workerpool_order.trust, "match: trust above the workerpool's"
    assert request_order.trust <= MAX_TRUST, "match: trust too high"
    assert app_order.appprice <= request_order.appmaxprice, "match: app price above the request's max"
    assert workerpool_order.workerpoolprice <= request_order.workerpoolmaxprice, "match: workerpool price above the request's max"
    has_dataset: bool = request_order.dataset != empty(address)
    dataset_price: uint256 = 0
    if has_dataset:
        dataset_price = dataset_order.datasetprice
        assert dataset_price <= request_order.datasetmaxprice, "match: dataset price above the request's max"
    tag: uint256 = convert(app_order.tag, uint256) | convert(request_order.tag, uint256)
    if has_dataset:
        tag |= convert(dataset_order.tag, uint256)
    assert tag & ~convert(workerpool_order.tag, uint256) == 0, "match: workerpool lacks a required tag"
    assert request_order.app == app_order.app, "match: request names another app"
    assert request_order.dataset == dataset_order.dataset, "match: request names another dataset"
    assert self._allowed(request_order.workerpool, workerpool_order.workerpool), "match: request restricts the workerpool"
    assert self._allowed(app_order.datasetrestrict, request_order.dataset), "match: app order restricts the dataset"
    assert self._allowed(app_order.workerpoolrestrict, workerpool_order.workerpool), "match: app order restricts the workerpool"
    assert self._allowed(app_order.requesterrestrict, request_order.requester), "match: app order restricts the requester"
    if has_dataset:
        assert self._allowed(dataset_order.apprestrict, app_order.app), "match: dataset order restricts the app"
        assert self._allowed(dataset_order.workerpoolrestrict, workerpool_order.workerpool), "match: dataset order restricts the workerpool"
        assert self._allowed(dataset_order.requesterrestrict, request_order.requester), "match: dataset order restricts the requester"
    assert self._allowed(workerpool_order.apprestrict, app_order.app), "match: workerpool order restricts the app"
    assert self._allowed(workerpool_order.datasetrestrict, request_order.dataset), "match: workerpool order restricts the dataset"
    assert self._allowed(workerpool_order.requesterrestrict, request_order.requester), "match: workerpool order restricts the requester"

    app_owner: address = empty(address)
    app_tee: bool = False
    app_owner, app_tee = staticcall APP_REGISTRY.appInfo(app_order.app)
    assert app_owner != empty(address), "match: unknown app"
    assert tag & TAG_TEE == 0 or app_tee, "match: TEE tag needs a TEE app"
    dataset_owner: address = empty(address)
    if has_dataset:
        dataset_owner = staticcall DATASET_REGISTRY.datasetOwner(dataset_order.dataset)
        assert dataset_owner != empty(address), "match: unknown dataset"
    workerpool_owner: address = empty(address)
    worker_stake_ratio: uint256 = 0
    scheduler_reward_ratio: uint256 = 0
    workerpool_owner, worker_stake_ratio, scheduler_reward_ratio = staticcall WORKERPOOL_REGISTRY.workerpoolInfo(
        workerpool_order.workerpool
    )
    assert workerpool_owner != empty(address), "match: unknown workerpool"

    app_hash: bytes32 = self._app_order_digest(app_order)
    dataset_hash: bytes32 = empty(bytes32)
    workerpool_hash: bytes32 = self._workerpool_order_digest(workerpool_order)
    request_hash: bytes32 = self._request_order_digest(request_order)
    assert self._verify(app_owner, app_hash, app_sign), "match: invalid app order signature"
    if has_dataset:
        dataset_hash = self._dataset_order_digest(dataset_order)
        assert self._verify(dataset_owner, dataset_hash, dataset_sign), "match: invalid dataset order signature"
    assert self._verify(workerpool_owner, workerpool_hash, workerpool_sign), "match: invalid workerpool order signature"
    assert self._verify(request_order.requester, request_hash, request_sign), "match: invalid request order signature"

    volume: uint256 = self._remaining(app_hash, app_order.volume)
    assert volume > 0, "match: app order fully consumed"
    if has_dataset:
        dataset_remaining: uint256 = self._remaining(dataset_hash, dataset_order.volume)
        assert dataset_remaining > 0, "match: dataset order fully consumed"
        volume = min(volume, dataset_remaining)
    workerpool_remaining: uint256 = self._remaining(workerpool_hash, workerpool_order.volume)
    assert workerpool_remaining > 0, "match: workerpool order fully consumed"
    request_consumed: uint256 = self.consumed[request_hash]
    assert request_order.volume > request_consumed, "match: request order fully consumed"
    volume = min(min(volume, workerpool_remaining), request_order.volume - request_consumed)

    dealid: bytes32 = keccak256(concat(request_hash, convert(request_consumed, bytes32)))
    self.consumed[app_hash] += volume
    if has_dataset:
        self.consumed[dataset_hash] += volume
    self.consumed[workerpool_hash] += volume
    self.consumed[request_hash] = request_consumed + volume

    task_price: uint256 = app_order.appprice + dataset_price + workerpool_order.workerpoolprice
    deal: Deal = Deal(
        app=app_order.app,
        app_owner=app_owner,
        app_price=app_order.appprice,
        dataset=request_order.dataset,
        dataset_owner=dataset_owner,
        dataset_price=dataset_price,
        workerpool=workerpool_order.workerpool,
        workerpool_owner=workerpool_owner,
        workerpool_price=workerpool_order.workerpoolprice,
        requester=request_order.requester,
        beneficiary=request_order.beneficiary,
        callback=request_order.callback,
        category=request_order.category,
        time_ref=time_ref,
        start_time=block.timestamp,
        trust=max(request_order.trust, 1),
        tag=convert(tag, bytes32),
        bot_first=request_consumed,
        bot_size=volume,
        worker_stake=workerpool_order.workerpoolprice * worker_stake_ratio // 100,
        scheduler_reward_ratio=scheduler_reward_ratio,
    )
    encoded: Bytes[672] = abi_encode(deal)
    extcall HUB.openDeal(
        dealid,
        keccak256(encoded),
        request_order.requester,
        task_price * volume,
        workerpool_owner,
        workerpool_order.workerpoolprice * POOL_STAKE_RATIO // 100 * volume,
    )
    log OrdersMatched(
        dealid=dealid,
        app_order_hash=app_hash,
        dataset_order_hash=dataset_hash,
        workerpool_order_hash=workerpool_hash,
        request_order_hash=request_hash,
        volume=volume,
    )
    log DealCreated(
        dealid=dealid,
        requester=request_order.requester,
        workerpool=workerpool_order.workerpool,
        deal=encoded,
        params=request_order.params,
    )
    log SchedulerNotice(workerpool=workerpool_order.workerpool, dealid=dealid)
    return dealid


