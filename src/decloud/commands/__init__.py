"""The `decloud` command groups of the SDK, one module per group (STYLE.md section 4):
`wallet`, `account`, `app`, `dataset`, `workerpool`, `category`, `order`, `orderbook`,
`deal`, `task`, `result`. Each module's `app` is its group; `decloud.cli` mounts them, and
imports one only when its group runs, so this package imports nothing itself.
"""
