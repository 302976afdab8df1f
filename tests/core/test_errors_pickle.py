"""Every Ephemera error survives pickling (the bridge ships exceptions from the VMs to the
client): one ``__reduce__`` on the base class serves every subclass, whatever its
``__init__`` signature."""

from __future__ import annotations

import inspect
import pickle

import pytest

from ephemera import errors
from ephemera.errors import EphemeraError

SAMPLES = {
    errors.EphemeraError: ("plain", {"retryable": True}),
    errors.FieldError: ("a.b", "bad"),
    errors.ConfigError: ("storage.bucket", "missing", "set it"),
    errors.ConfigFileError: ("/etc/ephemera.yaml", "is not valid YAML"),
    errors.ConfigErrors: ([errors.ConfigError("a", "missing"), errors.ConfigError("b.c", "bad", "fix it")],),
    errors.StackSpecError: ("terraform/x/stack.toml: variables.x.type", "unknown", "use one of string"),
    errors.BootDocumentError: ("worker", "missing"),
    errors.AgentConfigError: ("run_id", "missing", "start the VM again"),
    errors.ParamError: ("run_id", "malformed"),
    errors.ImageError: ("path", "is outside the image store", "build it again"),
    errors.ImageBuildError: ("the builder VM is lost", "build again", {"retryable": True}),
    errors.EventError: ("key", "not a string"),
    errors.AuthError: (),
    errors.NoSuchKeyError: ("b", "k"),
    errors.NoSuchBucketError: ("b",),
    errors.EngineError: ("apply failed", {"log_tail": "tail", "retryable": True}),
    errors.WorkspaceBusyError: ("busy", {"log_tail": "t"}),
    errors.RunNotFoundError: ("r1",),
    errors.RunRecordInvalidError: ("ephemera/runs/r1.json", "not JSON"),
    errors.RunPrefixNotEmptyError: ("r1", ["a", "b"]),
}


def _make(cls: type) -> EphemeraError:
    args = SAMPLES.get(cls, ("message",))
    kwargs = args[-1] if args and isinstance(args[-1], dict) else {}
    return cls(*(args[:-1] if kwargs else args), **kwargs)


def _error_classes() -> list[type]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, EphemeraError)]


@pytest.mark.parametrize("cls", _error_classes(), ids=lambda c: c.__name__)
def test_every_error_round_trips_through_pickle(cls: type) -> None:
    exc = _make(cls)
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is cls
    assert (back.args, back.message, back.code, back.retryable) == (exc.args, exc.message, exc.code, exc.retryable)
    assert back.__dict__ == exc.__dict__
    assert str(back) == str(exc)


def test_one_reduce_serves_every_error() -> None:
    """No subclass writes its own ``__reduce__``: the base class's is the one."""
    own = [c.__name__ for c in _error_classes() if c is not EphemeraError and "__reduce__" in vars(c)]
    assert own == []
