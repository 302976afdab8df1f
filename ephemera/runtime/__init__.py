"""The local runtime behind ``ephemera up``: alarm scheduler, bucket watchers, the
invoker with its warm pool, activation records. Never shipped in an action package."""
