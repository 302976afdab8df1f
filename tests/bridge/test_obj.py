"""``obj`` partitioning over object storage, against both compute backends."""

from __future__ import annotations

import uuid

import pytest

from tests.bridge import funcs


@pytest.fixture
def dataset(fexec, bucket):
    """Two text objects under a fresh prefix: (prefix, {key: lines})."""
    prefix = f"bridge-tests/obj-{uuid.uuid4().hex[:8]}/"
    objects = {
        prefix + "a.txt": [f"alpha line {i} " + "x" * (i % 17) for i in range(120)],
        prefix + "b.txt": [f"beta {i}" for i in range(40)],
    }
    for key, lines in objects.items():
        fexec.storage.put_object(bucket, key, "\n".join(lines) + "\n")
    return prefix, objects


def _lines_by_key(results):
    out: dict = {}
    for r in results:
        out.setdefault(r["key"], []).extend(r["lines"])
    return out


@pytest.mark.parametrize("split", [{"obj_chunk_size": 100}, {"obj_chunk_number": 3}, {}])
def test_prefix_split_keeps_lines_whole(fexec, bucket, dataset, split):
    prefix, objects = dataset
    results = fexec.get_result(fexec.map(funcs.read_lines, [f"{bucket}/{prefix}"], **split))
    assert _lines_by_key(results) == objects  # every line once, whole, in order
    parts = [r["part"] for r in results if r["key"].endswith("a.txt")]
    assert parts == list(range(1, len(parts) + 1)) and results[0]["total"] == len(parts)
    if split:
        assert len(parts) > 1


def test_exact_byte_split_without_newline(fexec, bucket, dataset):
    prefix, objects = dataset
    key = prefix + "b.txt"
    size = int(fexec.storage.head_object(bucket, key)["content-length"])
    sizes = fexec.get_result(fexec.map(funcs.count_bytes, [f"{bucket}/{key}"], obj_chunk_size=64, obj_newline=None))
    assert sum(sizes) == size and all(s == 64 for s in sizes[:-1])


def test_url_keys_cloudobjects_and_extra_args(fexec, bucket, dataset):
    prefix, objects = dataset
    url = f"localhost://{bucket}/{prefix}a.txt"
    r = fexec.get_result(fexec.map(funcs.read_lines, [url], obj_chunk_number=2))
    assert _lines_by_key(r) == {prefix + "a.txt": objects[prefix + "a.txt"]}
    co = fexec.storage.put_cloudobject("one\ntwo\n")
    r = fexec.get_result(fexec.map(funcs.read_lines, [{"obj": co}]))
    assert r[0]["lines"] == ["one", "two"]


def test_map_reduce_by_key(fexec, bucket, dataset):
    prefix, objects = dataset
    fs = fexec.map_reduce(
        funcs.read_lines, [f"{bucket}/{prefix}"], funcs.collect_lines, obj_chunk_size=128, obj_reduce_by_key=True
    )
    per_object = fexec.get_result(fs)
    assert per_object == [sorted(objects[k]) for k in sorted(objects)]
    fs = fexec.map_reduce(funcs.read_lines, [f"{bucket}/{prefix}"], funcs.collect_lines, obj_chunk_size=128)
    assert fexec.get_result(fs) == sorted(line for lines in objects.values() for line in lines)


def test_missing_object_is_a_clear_error(fexec, bucket):
    from lithops_bridge.storage.utils import StorageNoSuchKeyError

    with pytest.raises(StorageNoSuchKeyError, match="No such key"):
        fexec.map(funcs.read_lines, [f"{bucket}/bridge-tests/nope.txt"])


def test_url_schemes_name_backends_as_lithops_does():
    """Lithops accepts ``cos://`` and ``s3://`` as aliases of ``ibm_cos://`` and ``aws_s3://``."""
    from lithops_bridge.partitioner import split_url

    assert split_url("cos://b/k.txt", "localhost") == ("ibm_cos", "b", "k.txt")
    assert split_url("s3://b/p/", "localhost") == ("aws_s3", "b", "p/")
    assert split_url("aws_s3://b/k", "localhost") == ("aws_s3", "b", "k")
    assert split_url("b/k", "ibm_cos") == ("ibm_cos", "b", "k")
