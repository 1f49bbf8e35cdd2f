"""decloud: an open, decentralized marketplace for cloud computing."""

__version__ = "0.1.0"
