"""The Storage interface, the same assertions on localhost, aws_s3 and ibm_cos (HMAC).

aws_s3 and ibm_cos run against a moto S3 server on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ephemera.errors import InvalidKeyError, NoSuchBucketError, NoSuchKeyError
from ephemera.storage.base import BulkDelete, ObjectInfo, Storage
from tests.fakes.s3_server import seed_objects


def test_backend_implements_protocol(storage, backend_name):
    assert isinstance(storage, Storage)
    assert storage.backend == backend_name


def test_put_get_head_roundtrip(storage, bucket):
    data = b"hello object storage"
    info = storage.put(bucket, "runs/r1/record.json", data)
    assert info.key == "runs/r1/record.json"
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data).hexdigest()
    assert info.last_modified.tzinfo is not None
    assert storage.get(bucket, "runs/r1/record.json") == data
    head = storage.head(bucket, "runs/r1/record.json")
    assert isinstance(head, ObjectInfo)
    assert (head.key, head.size, head.etag) == ("runs/r1/record.json", len(data), info.etag)
    assert head.last_modified.utcoffset().total_seconds() == 0


def test_put_replaces_and_empty_object(storage, bucket):
    storage.put(bucket, "k", b"first")
    storage.put(bucket, "k", b"second version")
    assert storage.get(bucket, "k") == b"second version"
    storage.put(bucket, "empty", b"")
    assert storage.get(bucket, "empty") == b""
    assert storage.head(bucket, "empty").size == 0


@pytest.mark.parametrize(
    "byte_range, expected",
    [((0, 0), b"0"), ((1, 3), b"123"), ((7, 9), b"789"), ((7, 100), b"789"), ((10, 20), b""), ((5, 4), b"")],
)
def test_get_byte_range(storage, bucket, byte_range, expected):
    storage.put(bucket, "digits", b"0123456789")
    assert storage.get(bucket, "digits", byte_range=byte_range) == expected


def test_list_prefixes_in_key_order(storage, bucket):
    keys = ["b/2", "a/1", "a/10", "a/2", "ab", "a/sub/x", "c"]
    for key in keys:
        storage.put(bucket, key, key.encode())
    assert [o.key for o in storage.list(bucket)] == sorted(keys)
    assert [o.key for o in storage.list(bucket, "a/")] == ["a/1", "a/10", "a/2", "a/sub/x"]
    assert [o.key for o in storage.list(bucket, "a")] == ["a/1", "a/10", "a/2", "a/sub/x", "ab"]
    assert [o.key for o in storage.list(bucket, "a/1")] == ["a/1", "a/10"]
    assert list(storage.list(bucket, "zzz")) == []
    sizes = {o.key: o.size for o in storage.list(bucket)}
    assert sizes["a/sub/x"] == len(b"a/sub/x")


def test_list_paginates_small_pages(make_storage, backend_name, unique_bucket):
    if backend_name == "localhost":
        pytest.skip("localhost lists a folder, it has no pages")
    storage = make_storage(page_size=7)
    storage.create_bucket(unique_bucket)
    keys = [f"p/{i:03d}" for i in range(30)]
    for key in keys:
        storage.put(unique_bucket, key, b"x")
    assert [o.key for o in storage.list(unique_bucket, "p/")] == keys


def test_list_more_than_1000_keys(storage, bucket, backend_name):
    """S3 returns at most 1,000 keys per ListObjectsV2 page: a longer listing takes the
    continuation token. On the S3 fakes 1,000 keys are seeded into the server's store and
    13 written through the client; on localhost all are written through the client."""
    keys = [f"many/{i:05d}" for i in range(1013)]
    through_client = keys if backend_name == "localhost" else keys[::78]
    if backend_name != "localhost":
        seed_objects(bucket, [k for k in keys if k not in set(through_client)])
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: storage.put(bucket, k, b""), through_client))
    storage.put(bucket, "other", b"")
    listed = [o.key for o in storage.list(bucket, "many/")]
    assert listed == keys


def test_delete(storage, bucket):
    storage.put(bucket, "d/x", b"1")
    storage.delete(bucket, "d/x")
    with pytest.raises(NoSuchKeyError):
        storage.get(bucket, "d/x")
    storage.delete(bucket, "d/x")  # missing is fine
    storage.delete(bucket, "never/existed")
    assert list(storage.list(bucket, "d/")) == []


def test_delete_many_in_one_call(storage, bucket, backend_name):
    """Every backend deletes many objects in one call (the ``BulkDelete`` capability):
    the named objects go, missing ones are no error, others stay; on S3 the 1,013 keys
    take two DeleteObjects requests (1,000 keys each at most), all gone after."""
    assert isinstance(storage, BulkDelete)
    storage.put(bucket, "keep/1", b"k")
    for key in ("job/a/0", "job/a/1", "job/b", "top"):
        storage.put(bucket, key, b"x")
    storage.delete_many(bucket, ["job/a/0", "job/a/1", "job/b", "top", "job/never", "nothing/here"])
    assert [o.key for o in storage.list(bucket)] == ["keep/1"]
    many = [f"bulk/{i:05d}" for i in range(1013)]
    if backend_name == "localhost":
        for key in many:
            storage.put(bucket, key, b"")
    else:
        seed_objects(bucket, many)
    storage.delete_many(bucket, many)
    assert [o.key for o in storage.list(bucket)] == ["keep/1"]
    with pytest.raises(InvalidKeyError):
        storage.delete_many(bucket, ["ok/key", "../escape"])


def test_missing_key(storage, bucket):
    with pytest.raises(NoSuchKeyError) as err:
        storage.get(bucket, "no/such/key")
    assert (err.value.bucket, err.value.key) == (bucket, "no/such/key")
    assert "no/such/key" in str(err.value)
    with pytest.raises(NoSuchKeyError):
        storage.head(bucket, "no/such/key")
    with pytest.raises(NoSuchKeyError):
        storage.get(bucket, "no/such/key", byte_range=(0, 3))


def test_missing_bucket(storage, unique_bucket):
    assert storage.bucket_exists(unique_bucket) is False
    with pytest.raises(NoSuchBucketError) as err:
        storage.get(unique_bucket, "k")
    assert err.value.bucket == unique_bucket
    with pytest.raises(NoSuchBucketError):
        storage.head(unique_bucket, "k")
    with pytest.raises(NoSuchBucketError):
        list(storage.list(unique_bucket))


def test_create_bucket_idempotent(storage, unique_bucket):
    storage.create_bucket(unique_bucket)
    storage.create_bucket(unique_bucket)
    assert storage.bucket_exists(unique_bucket) is True
    assert list(storage.list(unique_bucket)) == []


BAD_KEYS = ["../escape", "/absolute", "a//b", "a/../b", "folder/", "", "a/./b", "nul\x00byte"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_invalid_keys_rejected_naming_the_key(storage, bucket, key):
    for call in (
        lambda: storage.put(bucket, key, b"x"),
        lambda: storage.put_if_absent(bucket, key, b"x"),
        lambda: storage.get(bucket, key),
        lambda: storage.head(bucket, key),
        lambda: storage.delete(bucket, key),
    ):
        with pytest.raises(InvalidKeyError) as err:
            call()
        assert repr(key) in str(err.value) or f"'{key}'" in str(err.value)
    assert list(storage.list(bucket)) == []


@pytest.mark.parametrize("name", ["UPPER", "ab", "bad_name", "-dash", "a..b"])
def test_invalid_bucket_rejected(storage, name):
    with pytest.raises(InvalidKeyError) as err:
        storage.put(name, "k", b"x")
    assert name in str(err.value)


def test_put_if_absent(storage, bucket):
    assert storage.put_if_absent(bucket, "locks/a", b"first") is True
    assert storage.put_if_absent(bucket, "locks/a", b"second") is False
    assert storage.get(bucket, "locks/a") == b"first"
    assert [o.key for o in storage.list(bucket, "locks/")] == ["locks/a"]  # no claim left behind


def test_writes_to_missing_bucket(storage, backend_name, unique_bucket):
    if backend_name == "localhost":
        pytest.skip("localhost creates a bucket folder on first write, by design")
    with pytest.raises(NoSuchBucketError):
        storage.put(unique_bucket, "k", b"x")
    with pytest.raises(NoSuchBucketError):
        storage.put_if_absent(unique_bucket, "k", b"x")
    with pytest.raises(NoSuchBucketError):
        storage.delete(unique_bucket, "k")


def test_concurrent_put_if_absent_exactly_once(make_storage, unique_bucket):
    make_storage().create_bucket(unique_bucket)
    contenders = 20
    # one storage object per caller, as separate processes would have
    stores = [make_storage(claim_settle=0.5) for _ in range(contenders)]
    barrier = threading.Barrier(contenders)
    results: dict[int, bool] = {}

    def contend(i: int) -> None:
        barrier.wait()
        results[i] = stores[i].put_if_absent(unique_bucket, "locks/run-1", f"owner-{i}".encode())

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(contenders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [i for i, created in results.items() if created]
    assert len(results) == contenders
    assert len(winners) == 1
    assert stores[0].get(unique_bucket, "locks/run-1") == f"owner-{winners[0]}".encode()
    assert [o.key for o in stores[0].list(unique_bucket, "locks/")] == ["locks/run-1"]
