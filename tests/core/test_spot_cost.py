"""Spot in the price table, a run's cost and ``ephemera plan``.

A price may have a spot column (``spot_hourly``, in a stack's ``stack.toml`` or the
config's ``cost.prices``); a run whose VMs ran on spot (each VM's ``market`` in the stack's
outputs, else ``workspace.variables.spot``) is priced at the spot price; a recovered run
pays each VM lifetime at the price of the market it ran in. Where no spot price is known,
spot time is priced at on-demand and said so: "your Spot Instances launch at the current
Spot price, not exceeding the On-Demand price" (EC2 User Guide, "Spot Instance pricing
history"), so on-demand is the most spot costs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ephemera.assembly import load_config
from ephemera.cli import main
from ephemera.cli.runs import cost_lines
from ephemera.context import Context
from ephemera.errors import ConfigError, StackSpecError
from ephemera.lifecycle.plan import plan_workspace
from ephemera.model.cost import ON_DEMAND, SPOT, PaidLifetime, price_table, run_cost, run_market
from ephemera.model.runs import RunRecord
from ephemera.stack import check_user_variables, registered_stacks, stack_spec
from ephemera.stack.spec import parse_spec

IBM = "gx3-16x80x1l4"
OUR_PRICES = {IBM: {"hourly": 2.0, "spot_hourly": 0.6, "as_of": "2026-12-01", "source": "our contract"}}


def ran(market: str | None, total: float = 3600.0, workload: float = 2700.0, **extra) -> RunRecord:
    """A destroyed run of one IBM VM that ran in ``market`` (None: its outputs do not say)."""
    record = RunRecord(run_id="gpu-1", workspace="gpu", engine="schematics", state="DESTROYED", **extra)
    record.outputs = {"workers": [{"worker": 0, "profile": IBM, **({"market": market} if market else {})}]}
    record.vm_seconds = {"total": total, "workload": workload, "outside": total - workload}
    return record


def spec_with(price: str) -> str:
    return f'description = "x"\n[variables.run_id]\ntype = "string"\n[prices.p1]\n{price}\n'


def test_a_stack_price_may_have_a_spot_column(tmp_path):
    spec = parse_spec("s", tmp_path, spec_with('hourly = 2.0\nspot_hourly = 0.5\nsource = "list"'))
    assert spec.prices["p1"].spot_hourly == 0.5
    assert parse_spec("s", tmp_path, spec_with('hourly = 2.0\nsource = "list"')).prices["p1"].spot_hourly is None


@pytest.mark.parametrize("value", ["-0.1", '"cheap"', "true"])
def test_a_bad_spot_price_in_a_stack_names_the_key(tmp_path, value):
    with pytest.raises(StackSpecError) as info:
        parse_spec("s", tmp_path, spec_with(f'hourly = 2.0\nspot_hourly = {value}\nsource = "list"'))
    assert "prices.p1.spot_hourly" in str(info.value) and ">= 0" in str(info.value)


@pytest.mark.parametrize("value", [-1, "0.5", True])
def test_a_bad_spot_price_in_the_config_names_the_key(value):
    with pytest.raises(ConfigError) as info:
        load_config({"cost": {"prices": {IBM: {"hourly": 2.0, "spot_hourly": value}}}})
    assert f"cost.prices.{IBM}.spot_hourly" in str(info.value)


def test_the_configs_spot_price_is_in_the_table_and_its_entry_wins_whole():
    table = price_table(load_config({"cost": {"prices": OUR_PRICES}}), registered_stacks())
    assert (table[IBM].hourly, table[IBM].spot_hourly, table[IBM].source) == (2.0, 0.6, "our contract")
    # an entry without a spot price: the user's list has none, so none is made up
    table = price_table(load_config({"cost": {"prices": {IBM: {"hourly": 2.0}}}}), registered_stacks())
    assert table[IBM].spot_hourly is None


def test_a_spot_run_is_priced_at_its_spot_price():
    config = load_config({"cost": {"prices": OUR_PRICES}})
    spot = run_cost(ran(SPOT), config, stacks=registered_stacks())
    assert spot.market == SPOT and spot.cost == pytest.approx(0.6) and spot.idle_cost == pytest.approx(0.15)
    on_demand = run_cost(ran(ON_DEMAND), config, stacks=registered_stacks())
    assert on_demand.market == ON_DEMAND and on_demand.cost == pytest.approx(2.0)
    assert not spot.spot_at_on_demand and spot.to_dict()["lifetimes"] == [
        {"seconds": 3600.0, "market": "spot", "workload_seconds": 2700.0}
    ]


def test_the_market_is_what_the_stack_reported_else_the_configs_spot():
    ibm = stack_spec("ibm-vpc-gpu")
    asked = load_config({"workspace": {"stack": "ibm-vpc-gpu", "variables": {"spot": True}}})
    assert run_market(ran(None), asked, ibm) == SPOT  # outputs silent: as configured
    assert run_market(ran(ON_DEMAND), asked, ibm) == ON_DEMAND  # the stack's report wins (a fallback to on-demand)
    assert run_market(ran(None), load_config({"workspace": {"stack": "ibm-vpc-gpu"}}), ibm) == ON_DEMAND
    local = RunRecord(run_id="r", workspace="ws", engine="terraform")
    local.outputs = {"agents": [{"worker": 0, "market": "spot"}, {"worker": 1, "market": "spot"}]}
    assert run_market(local, load_config({}), stack_spec("local")) == SPOT  # the local stack's VM list


def test_a_recovered_run_pays_each_vm_lifetime_at_the_price_it_ran_at():
    """Preempted twice on spot, then fallen back to on-demand: two lost spot lifetimes (paid) and the last one."""
    config = load_config({"cost": {"prices": OUR_PRICES}})
    record = ran(ON_DEMAND, total=3600.0, workload=3000.0)
    earlier = [PaidLifetime(1800.0, SPOT, 1500.0), PaidLifetime(900.0, SPOT, 600.0)]
    cost = run_cost(record, config, stacks=registered_stacks(), earlier=earlier)
    assert cost.cost == pytest.approx(0.75 * 0.6 + 1 * 2.0)
    assert cost.vm_seconds == 6300.0 and cost.workload_seconds == 5100.0 and cost.idle_seconds == 1200.0
    assert cost.idle_cost == pytest.approx(600 / 3600 * 0.6 + 600 / 3600 * 2.0)
    lines = cost_lines(cost)
    assert "2700.0 VM-seconds x 0.6 USD/h spot + 3600.0 VM-seconds x 2 USD/h on-demand" in lines[0], lines
    assert any("3 VM lifetimes: 2 lost to preemptions, each paid" in line for line in lines), lines


def test_the_lifetimes_a_run_record_keeps_are_priced_by_default():
    """The recovery's record of each preemption (``paid_seconds``, ``market``) is read when no lifetimes are given."""
    config = load_config({"cost": {"prices": OUR_PRICES}})
    record = ran(SPOT)
    record.preemptions = [  # type: ignore[attr-defined]
        {"worker": 0, "paid_seconds": 1800.0, "market": "spot", "workload_seconds": 1200.0},
        {"worker": 0, "note": "no time"},
        {"worker": 0, "paid_seconds": -7200.0},  # a record edited to pay less is not believed
        {"worker": 0, "paid_seconds": "9e9"},
    ]
    cost = run_cost(record, config, stacks=registered_stacks())
    assert cost.cost == pytest.approx(1.5 * 0.6) and len(cost.lifetimes) == 2
    assert cost.workload_seconds == 1200.0 + 2700.0


def test_spot_without_a_spot_price_is_priced_at_on_demand_and_said_so():
    cost = run_cost(ran(SPOT), load_config({}), stacks=registered_stacks())
    hourly = price_table(load_config({}), registered_stacks())[IBM].hourly
    assert cost.spot_at_on_demand and cost.cost == pytest.approx(hourly)
    assert any(f"set cost.prices.{IBM}.spot_hourly" in line and "on-demand" in line for line in cost_lines(cost))


@pytest.mark.parametrize("value", ["true", "yes", 1])
def test_spot_must_be_a_real_bool(value):
    """Terraform would take the text "true" as true while the cost would price on-demand: refused at load."""
    with pytest.raises(ConfigError) as info:
        check_user_variables(stack_spec("local"), {"spot": value})
    assert "workspace.variables.spot" in str(info.value) and "true or false" in str(info.value)


def test_recovery_is_ephemeras_not_the_users():
    with pytest.raises(ConfigError) as info:
        check_user_variables(stack_spec("ibm-vpc-gpu"), {"recovery": 3})
    assert "workspace.variables.recovery" in str(info.value) and "Ephemera" in str(info.value)


def _write(raw: dict, home: Path) -> Path:
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow  # a Terraform plan of the local stack
def test_plan_of_a_spot_config_prices_spot_beside_on_demand_and_says_it_may_be_preempted(local_config, home, capsys):
    raw = local_config(
        workspace={"name": "ws", "stack": "local", "variables": {"worker_count": 2, "spot": True}},
        cost={"prices": {"local": {"hourly": 0.5, "spot_hourly": 0.2, "as_of": "2026-12-01", "source": "a test's own price"}}},
        timeouts={"hard": "2h"},
    )
    ctx = Context(raw)
    ctx.storage.create_bucket(ctx.config.state_bucket)
    report = plan_workspace(ctx)
    assert report.spot and report.preemption == stack_spec("local").preemption
    assert report.per_hour == pytest.approx(0.4) and report.on_demand_per_hour == pytest.approx(1.0)
    assert report.for_hard_timeout == pytest.approx(0.8)

    assert main(["--config", str(_write(raw, home)), "plan"]) == 0
    out = capsys.readouterr().out
    assert "capacity: spot -- the VMs may be preempted" in out
    assert f"on preemption: {stack_spec('local').preemption}" in out
    assert "estimated cost on spot: 0.4000 USD per hour; 0.8000 USD at most" in out
    assert "price of local: 0.2 USD/h on spot, 0.5 USD/h on-demand, per instance" in out

    raw["cost"] = {"prices": {"local": {"hourly": 0.5}}}  # no spot price: on-demand, said so
    assert main(["--config", str(_write(raw, home)), "plan"]) == 0
    out = capsys.readouterr().out
    assert "spot price unknown, priced at on-demand (0.5 USD/h on-demand)" in out and "cost.prices.local.spot_hourly" in out
    assert "estimated cost on spot: 1.00 USD per hour" in out


@pytest.mark.slow  # a Terraform plan of the local stack
def test_plan_of_an_on_demand_config_says_nothing_of_spot(local_config, home, capsys):
    raw = local_config(workspace={"name": "ws", "stack": "local", "variables": {"spot": False}})
    assert main(["--config", str(_write(raw, home)), "plan"]) == 0
    out = capsys.readouterr().out
    assert "spot" not in out and "preempt" not in out


def test_the_price_table_shows_a_spot_column(local_config, home, capsys):
    raw = local_config(cost={"prices": {"g6.xlarge": {"hourly": 0.8, "spot_hourly": 0.31, "source": "our bill"}}})
    assert main(["--config", str(_write(raw, home)), "plan", "--prices"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["PROFILE"][:4] == ["PROFILE", "ON-DEMAND", "SPOT", "GPUS"]
    assert rows["g6.xlarge"][1:3] == ["0.8", "0.31"]
    assert rows[IBM][2] == "unknown" and "yes" in rows[IBM]  # the shipped estimate, no spot price made up
    assert rows["local"][1:3] == ["0", "0"]
