"""Storage helpers Lithops users import: ``CloudObject`` and ``StorageNoSuchKeyError``."""

from __future__ import annotations

from ephemera.errors import NoSuchKeyError


class StorageNoSuchKeyError(NoSuchKeyError):
    """The object (or bucket) does not exist. Also an Ephemera NoSuchKeyError, whose
    ``__reduce__`` lets it travel back from a remote call with its own type."""

    def __init__(self, bucket: str, key: str):
        super().__init__(bucket, key)
        self.message = f"No such key /{bucket}/{key} found in storage."
        self.args = (self.message,)

    def __str__(self) -> str:
        return self.message


class CloudObject:
    """A reference to an object put with ``Storage.put_cloudobject``."""

    def __init__(self, backend: str, bucket: str, key: str):
        self.backend = backend
        self.bucket = bucket
        self.key = key

    def __str__(self) -> str:
        return f"<CloudObject at {self.backend}://{self.bucket}/{self.key}>"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CloudObject) and (self.backend, self.bucket, self.key) == (
            other.backend,
            other.bucket,
            other.key,
        )

    def __hash__(self) -> int:
        return hash((self.backend, self.bucket, self.key))
