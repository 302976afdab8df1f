"""A throwaway storage backend, ``scratch``: a folder per bucket under ``scratch.path``.

It exists to prove that a backend is one folder plus one registry line: the tests
register it with ``BACKENDS["scratch"] = "tests.storage.scratch_backend.spec:ScratchSpec"``
and nothing else.
"""
