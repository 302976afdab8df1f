"""Finding 18 of issue 16: the bridge's Storage must not reach outside its storage.

``upload_file(path, bucket, '../../x')`` and ``download_file(bucket,
'../../../../etc/passwd', dest)`` are refused with ``InvalidKeyError`` naming the key
(every method checks bucket, key and prefix by the core's rules before any call), and
the localhost backend itself refuses a key whose resolved path leaves its bucket: a
symbolic link planted in the bucket leads nowhere outside."""

from __future__ import annotations

import os

import pytest

from ephemera.errors import InvalidKeyError
from ephemera.storage.localhost.backend import LocalhostStorage
from lithops_bridge import Storage
from lithops_bridge.storage.utils import CloudObject

BAD_KEYS = ["../../x", "../../../../etc/passwd", "a/../../b", "/etc/passwd", "a//b", "./a", "a/\x00b"]


@pytest.fixture
def storage(tmp_path, unique_bucket):
    return Storage(
        config={
            "lithops": {"storage": "localhost"},
            "localhost": {"storage_bucket": unique_bucket, "storage_root": str(tmp_path / "st")},
        }
    )


@pytest.mark.parametrize("key", BAD_KEYS)
def test_every_method_refuses_a_key_that_could_leave_the_bucket(storage, tmp_path, key):
    b = storage.bucket
    src = tmp_path / "src.txt"
    src.write_text("planted")
    dest = tmp_path / "dest" / "copy"
    calls = {
        "upload_file": lambda: storage.upload_file(str(src), b, key),
        "download_file": lambda: storage.download_file(b, key, str(dest)),
        "put_object": lambda: storage.put_object(b, key, b"x"),
        "get_object": lambda: storage.get_object(b, key),
        "head_object": lambda: storage.head_object(b, key),
        "delete_object": lambda: storage.delete_object(b, key),
        "delete_objects": lambda: storage.delete_objects(b, ["fine/key", key]),
        "put_cloudobject": lambda: storage.put_cloudobject(b"x", b, key),
        "get_cloudobject": lambda: storage.get_cloudobject(CloudObject("localhost", b, key)),
    }
    for name, call in calls.items():
        with pytest.raises(InvalidKeyError) as err:
            call()
        assert repr(key) in err.value.message, name
    assert not dest.exists() and not (tmp_path / "x").exists() and not (tmp_path / "b").exists()


def test_the_attacks_of_the_issue_fail_and_the_happy_path_works(storage, tmp_path):
    b = storage.bucket
    src = tmp_path / "up.txt"
    src.write_text("hello")
    with pytest.raises(InvalidKeyError, match=r"'\.\./\.\./x'"):
        storage.upload_file(str(src), b, "../../x")
    with pytest.raises(InvalidKeyError, match="etc/passwd"):
        storage.download_file(b, "../../../../etc/passwd", str(tmp_path / "passwd"))
    assert not (tmp_path / "passwd").exists() and not (tmp_path / "x").exists()
    with pytest.raises(InvalidKeyError, match="prefix"):
        storage.list_objects(b, "../")
    assert storage.upload_file(str(src), b, "files/up.txt")
    assert storage.download_file(b, "files/up.txt", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_text() == "hello"
    assert storage.list_keys(b) == ["files/up.txt"]


def test_a_symlink_in_the_bucket_leads_nowhere_outside(storage, tmp_path):
    """Defence in depth: keys that pass the rules by name but resolve outside the bucket."""
    b = storage.bucket
    storage.put_object(b, "inside/ok.txt", b"ok")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    bucket_dir = storage.ephemera_storage.bucket_path(b)
    os.symlink(outside, bucket_dir / "evil")
    os.symlink(outside / "secret.txt", bucket_dir / "link.txt")
    os.symlink(bucket_dir / "inside" / "ok.txt", bucket_dir / "alias.txt")  # a link within the bucket is fine
    for key in ("evil/secret.txt", "link.txt"):
        with pytest.raises(InvalidKeyError, match="symbolic link"):
            storage.get_object(b, key)
        with pytest.raises(InvalidKeyError, match="symbolic link"):
            storage.download_file(b, key, str(tmp_path / "stolen"))
    with pytest.raises(InvalidKeyError, match="symbolic link"):
        storage.put_object(b, "evil/planted", b"x")
    src = tmp_path / "src"
    src.write_text("overwrite")
    with pytest.raises(InvalidKeyError, match="symbolic link"):
        storage.upload_file(str(src), b, "link.txt")
    with pytest.raises(InvalidKeyError, match="symbolic link"):
        storage.delete_object(b, "evil/secret.txt")
    with pytest.raises(InvalidKeyError, match="symbolic link"):
        storage.delete_objects(b, ["inside/ok.txt", "evil/secret.txt"])  # checked before anything goes
    storage.ephemera_storage.delete_many(b, ["link.txt"])  # a link named by a key is removed, not what it points to
    assert not os.path.lexists(bucket_dir / "link.txt")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "not yours" and not (tmp_path / "stolen").exists()
    assert storage.get_object(b, "alias.txt") == b"ok"


def test_the_core_localhost_backend_refuses_a_resolved_path_outside_its_bucket(tmp_path):
    store = LocalhostStorage(tmp_path / "root")
    store.create_bucket("bkt")
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", store.bucket_path("bkt") / "out")
    with pytest.raises(InvalidKeyError) as err:
        store.put("bkt", "out/x", b"x")
    assert "'out/x'" in err.value.message and str(tmp_path) not in err.value.message
    assert not (tmp_path / "outside" / "x").exists()
