"""``lithops_bridge.Storage``: every method, on localhost storage and on S3 over real HTTP
(the moto server the test fakes start on 127.0.0.1)."""

from __future__ import annotations

import io

import pytest

from lithops_bridge import Storage
from lithops_bridge.storage.utils import CloudObject, StorageNoSuchKeyError

S3_KEY_ID = "TESTBRIDGEKEYID0001"
S3_SECRET = "bridge-s3-secret-Hq2Lz8Wv4Np6"


@pytest.fixture(params=["localhost", "aws_s3"])
def storage(request, tmp_path, unique_bucket):
    if request.param == "localhost":
        st = Storage(
            config={
                "lithops": {"storage": "localhost"},
                "localhost": {"storage_bucket": unique_bucket, "storage_root": str(tmp_path / "st")},
            }
        )
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        st = Storage(
            config={
                "lithops": {"storage": "aws_s3"},
                "aws": {"access_key_id": S3_KEY_ID, "secret_access_key": S3_SECRET},
                "aws_s3": {"endpoint": endpoint, "region": "us-east-1", "storage_bucket": unique_bucket},
            }
        )
        st.create_bucket(unique_bucket)
    return st


def test_storage_api(storage, tmp_path, unique_bucket):
    b = storage.bucket
    assert b == unique_bucket and storage.backend in ("localhost", "aws_s3")
    storage.put_object(b, "dir/a.txt", "hello world")
    storage.put_object(b, "dir/b.bin", b"\x00\x01")
    storage.put_object(b, "c.txt", io.BytesIO(b"from a stream"))
    assert storage.get_object(b, "dir/a.txt") == b"hello world"
    assert storage.get_object(b, "dir/a.txt", stream=True).read() == b"hello world"
    assert storage.get_object(b, "dir/a.txt", extra_get_args={"Range": "bytes=6-10"}) == b"world"
    assert storage.get_object(b, "dir/a.txt", extra_get_args={"Range": "bytes=6-"}) == b"world"
    assert storage.get_object(b, "dir/a.txt", extra_get_args={"Range": "bytes=-3"}) == b"rld"
    head = storage.head_object(b, "dir/a.txt")
    assert head["content-length"] == "11" and head["etag"]
    assert storage.head_bucket(b)
    assert storage.list_keys(b) == ["c.txt", "dir/a.txt", "dir/b.bin"]
    assert storage.list_keys(b, "dir/") == ["dir/a.txt", "dir/b.bin"]
    objs = storage.list_objects(b, "dir/")
    assert [(o["Key"], o["Size"]) for o in objs] == [("dir/a.txt", 11), ("dir/b.bin", 2)]
    assert [o["Key"] for o in storage.list_objects(b, match_pattern="*.txt")] == ["c.txt"]  # * stays in one name
    assert [o["Key"] for o in storage.list_objects(b, match_pattern="**/*.txt")] == ["c.txt", "dir/a.txt"]

    src = tmp_path / "up.txt"
    src.write_text("uploaded")
    assert storage.upload_file(str(src), b, "files/up.txt")
    dst = tmp_path / "down" / "up.txt"
    assert storage.download_file(b, "files/up.txt", str(dst))
    assert dst.read_text() == "uploaded"

    co = storage.put_cloudobject("cloud body")
    assert isinstance(co, CloudObject) and co.bucket == b and co.backend == storage.backend
    assert storage.get_cloudobject(co) == b"cloud body"
    assert storage.get_cloudobject(co, stream=True).read() == b"cloud body"
    co2 = storage.put_cloudobject(b"second", key="named/co")
    assert co2.key == "named/co"
    storage.delete_cloudobjects([co, co2])
    with pytest.raises(StorageNoSuchKeyError):
        storage.get_cloudobject(co)
    co3 = storage.put_cloudobject(b"third")
    storage.delete_cloudobject(co3)
    assert co3.key not in storage.list_keys(b)

    storage.delete_object(b, "c.txt")
    storage.delete_objects(b, ["dir/a.txt", "dir/b.bin"])
    assert storage.list_keys(b) == ["files/up.txt"]
    with pytest.raises(StorageNoSuchKeyError, match=f"No such key /{b}/dir/a.txt"):
        storage.get_object(b, "dir/a.txt")
    with pytest.raises(StorageNoSuchKeyError):
        storage.head_object(b, "dir/a.txt")


def test_answers_have_the_shapes_of_lithops_s3_backends(storage, tmp_path):
    """Lithops 3.x, lithops/storage/backends/aws_s3/aws_s3.py (ibm_cos.py is the same):
    ``head_bucket`` returns ``s3_client.head_bucket(Bucket=...)`` (a dict with
    ``ResponseMetadata`` whose ``HTTPStatusCode`` is 200) and raises
    ``StorageNoSuchKeyError(bucket, '')`` on 404; ``head_object`` returns
    ``metadata['ResponseMetadata']['HTTPHeaders']`` (lower-case header names, string
    values, the ETag in quotes) and raises ``StorageNoSuchKeyError`` on 404;
    ``list_objects`` returns the ``Contents`` items of ``list_objects_v2`` (``Key``,
    ``Size``, ``ETag`` in quotes, ``LastModified`` a datetime) filtered by
    ``lithops.libs.globber.match``; ``put_object`` returns None; ``delete_object``
    returns the DELETE response and ``delete_objects`` one ``delete_objects``
    response per 1,000 keys; ``upload_file``/``download_file`` return True, or False
    when the transfer fails."""
    import hashlib
    from datetime import datetime

    b = storage.bucket
    head = storage.head_bucket(b)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert isinstance(head["ResponseMetadata"]["HTTPHeaders"], dict)
    assert storage.put_object(b, "shape/a.txt", b"hello") is None
    digest = hashlib.md5(b"hello").hexdigest()
    meta = storage.head_object(b, "shape/a.txt")
    assert meta["content-length"] == "5" and meta["etag"] == f'"{digest}"'
    assert meta["last-modified"].endswith(" GMT") and all(isinstance(v, str) for v in meta.values())
    [item] = storage.list_objects(b, "shape/")
    assert item["Key"] == "shape/a.txt" and item["Size"] == 5 and item["ETag"] == f'"{digest}"'
    assert isinstance(item["LastModified"], datetime) and item["LastModified"].tzinfo is not None
    assert storage.delete_object(b, "shape/a.txt")["ResponseMetadata"]["HTTPStatusCode"] in (200, 204)
    assert storage.delete_object(b, "shape/never-there")["ResponseMetadata"]["HTTPStatusCode"] in (200, 204)
    for i in range(3):
        storage.put_object(b, f"shape/{i}", b"x")
    [batch] = storage.delete_objects(b, [f"shape/{i}" for i in range(3)])
    assert sorted(d["Key"] for d in batch["Deleted"]) == ["shape/0", "shape/1", "shape/2"]
    assert storage.list_keys(b, "shape/") == []
    assert storage.download_file(b, "shape/missing", str(tmp_path / "never")) is False
    assert not (tmp_path / "never").exists()
    assert storage.upload_file(str(tmp_path / "no-such-file"), b, "shape/x") is False
    with pytest.raises(StorageNoSuchKeyError):
        storage.head_object(b, "shape/missing")
    with pytest.raises(StorageNoSuchKeyError):
        storage.list_objects("no-such-bucket-for-bridge")
    with pytest.raises(ValueError, match="not alone"):
        storage.list_objects(b, match_pattern="a**")


def test_missing_bucket_and_wrong_backend(storage):
    with pytest.raises(StorageNoSuchKeyError):
        storage.head_bucket("no-such-bucket-for-bridge")
    with pytest.raises(ValueError, match="invalid storage backend"):
        storage.get_cloudobject(CloudObject("ibm_cos", storage.bucket, "k"))


def test_secrets_never_in_messages_or_repr(s3_endpoint, unique_bucket):
    storage = Storage(
        config={
            "lithops": {"storage": "aws_s3"},
            "aws_s3": {
                "endpoint": s3_endpoint,
                "region": "us-east-1",
                "storage_bucket": unique_bucket,
                "access_key_id": S3_KEY_ID,
                "secret_access_key": S3_SECRET,
            },
        }
    )
    texts = [repr(storage)]
    try:
        storage.get_object("no-such-bucket-for-bridge", "k")
    except Exception as exc:  # noqa: BLE001
        texts.append(str(exc))
    try:
        Storage(
            config={
                "lithops": {"storage": "aws_s3"},
                "aws_s3": {
                    "endpoint": s3_endpoint,
                    "storage_bucket": "x" * 80,
                    "access_key_id": S3_KEY_ID,
                    "secret_access_key": S3_SECRET,
                },
            }
        )
    except Exception as exc:  # noqa: BLE001
        texts.append(str(exc))
    assert len(texts) == 3
    assert not [t for t in texts if S3_SECRET in t or S3_KEY_ID in t]


def test_storage_travels_to_workers_without_reconfiguring(storage):
    import pickle

    clone = pickle.loads(pickle.dumps(storage))
    storage.put_object(storage.bucket, "shared", b"1")
    assert clone.get_object(clone.bucket, "shared") == b"1"


def test_cloud_objects_of_a_runs_workload_stay_under_the_runs_own_prefix(tmp_path, unique_bucket):
    """On a run's VMs a workload's cloud objects go to ``lithops.jobs/<run>/tmp/``, inside the
    prefixes its storage rights cover (``ephemera.layout.run_prefixes``): on S3 those rights
    are a session policy naming only the run's prefixes, so Lithops' shared
    ``lithops.jobs/tmp/`` would be refused there."""
    import json

    from ephemera import layout
    from ephemera.vm.services import VMInfo
    from lithops_bridge import constants as c
    from lithops_bridge.vm_service import BridgeService

    section = {"storage_bucket": unique_bucket, "storage_root": str(tmp_path / "st")}
    vm = VMInfo(
        run_id="ws-20261207t010000-abc",
        worker=0,
        worker_count=1,
        storage=None,
        state_bucket=unique_bucket,
        worker_processes=1,
        use_gpu=False,
        hard_deadline=None,
        same_host=True,
        lithops_storage={"backend": "localhost", "localhost": section},
        run_key="k" * 64,
    )
    service = BridgeService(vm)
    allowed = layout.run_prefixes(vm.run_id, f"outputs/{vm.run_id}/", "0" * 64).write
    for config in (json.loads(service.workload_env()["LITHOPS_CONFIG"]), service.bridge_config(c.LOCALHOST)):
        co = Storage(config=config).put_cloudobject(b"part")
        assert co.key.startswith(f"lithops.jobs/{vm.run_id}/tmp/") and any(co.key.startswith(p) for p in allowed), co.key
    # elsewhere (a laptop's plain config) Lithops' own default stays
    plain = Storage(config={"lithops": {"storage": "localhost"}, "localhost": section}).put_cloudobject(b"part")
    assert plain.key.startswith("lithops.jobs/tmp/")
