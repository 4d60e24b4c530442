"""Repositories: one interface (``base``), two implementations (``memory``, ``dynamodb``)."""
