"""decloud's Python SDK: one object per role, over the chain facades and the services.

```python
from decloud.sdk import ClientConfig, Keystore, Requester, connect

config = ClientConfig.load()                      # --config, DECLOUD_CONFIG, ~/.decloud
wallet = Keystore(config.wallet.keystore).unlock("alice", password)
requester = Requester(connect(config, wallet))
requester.deposit(10**12)
for report in requester.watch_task("0x...", timeout_s=300):
    print(report.state)
```

Results are typed dataclasses with a `to_json()`; every failure a person can fix is a
`DecloudError` whose message says what went wrong and whose `advice` says what to do.

The names are imported on first use: `decloud wallet` imports `decloud.sdk.wallet` alone,
not the chain client, web3 and every role with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from decloud.market.models import OrderKind
    from decloud.sdk.account import Balances, Escrow, Movement
    from decloud.sdk.app_developer import AppDeveloper, AppInfo
    from decloud.sdk.categories import Category, categories
    from decloud.sdk.config import ClientConfig, ServiceUrls, WalletSettings, config_path
    from decloud.sdk.connection import Connection, Transaction, connect
    from decloud.sdk.dataset_owner import DatasetInfo, DatasetOwner
    from decloud.sdk.errors import (
        ConfigError,
        DecloudError,
        InsufficientFunds,
        NodeUnreachable,
        NoGas,
        NotOwner,
        OrderFileError,
        Refused,
        TaskTimeout,
        UnknownResource,
        WalletError,
        WalletRequired,
        WrongPassword,
    )
    from decloud.sdk.execution import (
        ChosenOrder,
        DownloadedResult,
        NoMatchingOrder,
        Quote,
        ReplicateLogs,
        ResultMismatch,
        RunStarted,
        TaskNotCompleted,
    )
    from decloud.sdk.orders import CancelledOrder, Orders, OrderTerms, SignedOrder, read_order_file
    from decloud.sdk.requester import Requester
    from decloud.sdk.status import DealReport, DealTask, SchedulerView, TaskReport
    from decloud.sdk.wallet import Keystore, Wallet, WalletInfo, password_from_env
    from decloud.sdk.worker import Standing, Worker
    from decloud.sdk.workerpool_owner import WorkerpoolInfo, WorkerpoolOwner

_HOMES: dict[str, tuple[str, ...]] = {
    "decloud.market.models": ("OrderKind",),
    "decloud.sdk.account": ("Balances", "Escrow", "Movement"),
    "decloud.sdk.app_developer": ("AppDeveloper", "AppInfo"),
    "decloud.sdk.categories": ("Category", "categories"),
    "decloud.sdk.config": ("ClientConfig", "ServiceUrls", "WalletSettings", "config_path"),
    "decloud.sdk.connection": ("Connection", "Transaction", "connect"),
    "decloud.sdk.dataset_owner": ("DatasetInfo", "DatasetOwner"),
    "decloud.sdk.errors": (
        "ConfigError",
        "DecloudError",
        "InsufficientFunds",
        "NodeUnreachable",
        "NoGas",
        "NotOwner",
        "OrderFileError",
        "Refused",
        "TaskTimeout",
        "UnknownResource",
        "WalletError",
        "WalletRequired",
        "WrongPassword",
    ),
    "decloud.sdk.execution": (
        "ChosenOrder",
        "DownloadedResult",
        "NoMatchingOrder",
        "Quote",
        "ReplicateLogs",
        "ResultMismatch",
        "RunStarted",
        "TaskNotCompleted",
    ),
    "decloud.sdk.orders": (
        "CancelledOrder",
        "Orders",
        "OrderTerms",
        "SignedOrder",
        "read_order_file",
    ),
    "decloud.sdk.requester": ("Requester",),
    "decloud.sdk.status": ("DealReport", "DealTask", "SchedulerView", "TaskReport"),
    "decloud.sdk.wallet": ("Keystore", "Wallet", "WalletInfo", "password_from_env"),
    "decloud.sdk.worker": ("Standing", "Worker"),
    "decloud.sdk.workerpool_owner": ("WorkerpoolInfo", "WorkerpoolOwner"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "AppDeveloper",
    "AppInfo",
    "Balances",
    "CancelledOrder",
    "Category",
    "ChosenOrder",
    "ClientConfig",
    "ConfigError",
    "Connection",
    "DatasetInfo",
    "DatasetOwner",
    "DealReport",
    "DealTask",
    "DecloudError",
    "DownloadedResult",
    "Escrow",
    "InsufficientFunds",
    "Keystore",
    "Movement",
    "NoGas",
    "NoMatchingOrder",
    "NodeUnreachable",
    "NotOwner",
    "OrderFileError",
    "OrderKind",
    "OrderTerms",
    "Orders",
    "Quote",
    "Refused",
    "ReplicateLogs",
    "Requester",
    "ResultMismatch",
    "RunStarted",
    "SchedulerView",
    "ServiceUrls",
    "SignedOrder",
    "Standing",
    "TaskNotCompleted",
    "TaskReport",
    "TaskTimeout",
    "Transaction",
    "UnknownResource",
    "Wallet",
    "WalletError",
    "WalletInfo",
    "WalletRequired",
    "WalletSettings",
    "Worker",
    "WorkerpoolInfo",
    "WorkerpoolOwner",
    "WrongPassword",
    "categories",
    "config_path",
    "connect",
    "password_from_env",
    "read_order_file",
]
