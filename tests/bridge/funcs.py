"""Functions the bridge tests run remotely (importable by the agents' processes)."""

from __future__ import annotations

import os
import socket
import time


class CustomError(Exception):
    """An exception type defined by user code."""


class Unpicklable(Exception):
    def __init__(self, a, b):  # args != constructor signature: pickling round trip fails
        super().__init__(f"{a}/{b}")
        self.lock = __import__("threading").Lock()


def double(x):
    return x * 2


def add(a, b):
    return a + b


def add3(a, b, c=0):
    return a + b + c


def kw(**kwargs):
    return sorted(kwargs.items())


def echo(x):
    return x


def sleepy(seconds):
    time.sleep(seconds)
    return seconds


def where(x):
    """Which VM (or host) ran the call."""
    return os.environ.get("LITHOPS_BRIDGE_VM", socket.gethostname()), x


def raise_value_error(x):
    raise ValueError(f"bad value {x}")


def raise_if_str(x):
    """Twice ``x``; a string fails the call with ValueError naming it."""
    if isinstance(x, str):
        raise ValueError(f"bad value {x}")
    return x * 2


def raise_custom(x):
    raise CustomError(f"custom {x}")


def raise_unpicklable(x):
    raise Unpicklable(x, "y")


def exit_process(x):
    os._exit(7)


def with_storage(x, storage, id):
    key = f"bridge-tests/with_storage/{os.getpid()}-{time.time_ns()}-{x}"
    storage.put_object(storage.bucket, key, str(x * 10).encode())
    return {"id": id, "key": key, "bucket": storage.bucket, "backend": storage.backend}


def claim_once(token, id, storage):
    """True if this is the first time call `id` of this token runs (put_if_absent)."""
    return storage.ephemera_storage.put_if_absent(storage.bucket, f"bridge-tests/once/{token}/{id}", b"1")


def read_lines(obj):
    return {"key": obj.key, "part": obj.part, "total": obj.total_parts, "lines": obj.data_stream.read().decode().splitlines()}


def count_bytes(obj):
    return len(obj.data_stream.read())


def total(results):
    return sum(results)


def total_plus(results, extra):
    return sum(results) + extra


def collect_lines(results):
    return sorted(line for r in results for line in r["lines"])


def nested_map(n):
    """Creates its own executor (its config comes from the environment) and returns its futures."""
    from lithops_bridge import FunctionExecutor

    fexec = FunctionExecutor()
    return fexec.map(double, range(n))


def nested_result(n):
    from lithops_bridge import FunctionExecutor

    with FunctionExecutor() as fexec:
        return sum(fexec.get_result(fexec.map(double, range(n))))


def nested_single(x):
    from lithops_bridge import FunctionExecutor

    return FunctionExecutor().call_async(double, x)


def env_value(name):
    return os.environ.get(name)


def env_value_with_id(name, id):  # noqa: A002 - Lithops injects the call id by this name
    return os.environ.get(name)


def get_missing(key, storage):
    """Reads a key that does not exist: raises StorageNoSuchKeyError on the worker."""
    return storage.get_object(storage.bucket, key)


def wait_for_file(path):
    """Blocks until ``path`` exists (the test opens this gate), then returns it."""
    while not os.path.exists(path):
        time.sleep(0.02)
    return path


def mark_and_sleep(path, seconds):
    """Appends a line to ``path`` each time it starts (counts runs), then sleeps."""
    with open(path, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return seconds


def square(x):
    return x * x


def storage_answers(key, storage):
    """Storage calls made on the worker: the answers Lithops code would inspect there."""
    storage.put_object(storage.bucket, key, b"worker")
    return {
        "put": storage.put_object(storage.bucket, key, b"worker"),
        "head_bucket": storage.head_bucket(storage.bucket),
        "head_object": storage.head_object(storage.bucket, key),
        "listed": storage.list_objects(storage.bucket, key),
        "deleted": storage.delete_object(storage.bucket, key)["ResponseMetadata"]["HTTPStatusCode"],
    }


def set_init_tag(tag):
    """A Pool initializer: leaves a mark the task then reads."""
    os.environ["BRIDGE_MP_INIT_TAG"] = tag


def init_tag(x):
    return os.environ.get("BRIDGE_MP_INIT_TAG"), x


def worker_name(x):
    from lithops_bridge.multiprocessing import current_process

    return current_process().name


def append_file(proxy, src, dst):
    """Reads ``src`` through a cloud_proxy ``os`` and writes it, upper-cased, to ``dst``."""
    with proxy.open(src) as fh:
        text = fh.read()
    with proxy.open(dst, "w") as fh:
        fh.write(text.upper())
    return proxy.path.isfile(dst), sorted(proxy.listdir(proxy.path.dirname(dst)))


def _multiprocessing_process():
    from lithops_bridge.multiprocessing import Process

    return Process


class StoringProcess(_multiprocessing_process()):
    """A Process subclass with its own run(): stores ``value`` under ``key``."""

    def __init__(self, storage, key, value):
        super().__init__()
        self.storage, self.key, self.value = storage, key, value

    def run(self):
        self.storage.put_object(self.storage.bucket, self.key, str(self.value).encode())


def store_value(st, key, value):
    """Stores ``value`` under ``key`` with the Storage it is given."""
    st.put_object(st.bucket, key, value.encode())


def logged_sleep(path, call, seconds):
    """Appends "<call> <vm> start" to ``path``, sleeps, appends "<call> <vm> end"; returns (call, vm)."""
    vm = os.environ.get("LITHOPS_BRIDGE_VM", "localhost")
    with open(path, "a") as fh:
        fh.write(f"{call} {vm} start\n")
    time.sleep(seconds)
    with open(path, "a") as fh:
        fh.write(f"{call} {vm} end\n")
    return call, vm


def logged_sleep_or_gate(path, call, seconds_or_gate):
    """logged_sleep for a number of seconds; for a path, runs until that file exists (the test opens it)."""
    if not isinstance(seconds_or_gate, str):
        return logged_sleep(path, call, seconds_or_gate)
    vm = os.environ.get("LITHOPS_BRIDGE_VM", "localhost")
    with open(path, "a") as fh:
        fh.write(f"{call} {vm} start\n")
    while not os.path.exists(seconds_or_gate):
        time.sleep(0.02)
    with open(path, "a") as fh:
        fh.write(f"{call} {vm} end\n")
    return call, vm


def lock_if(x):
    """``x``, or a lock (which does not pickle) when ``x`` is "lock"."""
    return __import__("threading").Lock() if x == "lock" else x


def blas_threads(x):
    """The thread counts NumPy's numeric libraries run with in this call's process, and its thread variables."""
    import numpy  # noqa: F401 - loads the BLAS library the count is read from
    from threadpoolctl import threadpool_info

    from lithops_bridge.threads import THREAD_VARS

    return sorted({i["num_threads"] for i in threadpool_info()}), {n: os.environ.get(n) for n in THREAD_VARS}
