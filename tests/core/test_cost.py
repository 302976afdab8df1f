"""Cost per run: the price table (dates, sources, estimates said), the config's prices
over it, VM-seconds and idle time from the boot timeline, and what `ephemera runs`,
`runs show` and `runs --since` print."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ephemera.cli.runs import run_details, runs_table
from ephemera.assembly import load_config
from ephemera.context import Context
from ephemera.errors import ConfigError
from ephemera.model.cost import price_table, run_cost
from ephemera.model.runs import RunRecord
from ephemera.stack import registered_stacks, stack_spec
from ephemera.timeutil import now_utc

STACKS = registered_stacks()
PRICES = price_table(load_config({}), STACKS)  # the shipped stacks' prices


def destroyed(run_id, workspace="gpu", profile="gx3-16x80x1l4", total=3600.0, workload=2700.0, created=None):
    record = RunRecord(
        run_id=run_id,
        workspace=workspace,
        engine="schematics",
        state="DESTROYED",
        created_at=(created or now_utc()).isoformat(timespec="milliseconds"),
    )
    record.outputs = {"workers": [{"worker": 0, "profile": profile}]} if profile else {}
    record.vm_seconds = {"total": total, "workload": workload, "outside": total - workload}
    return record


def test_every_gx3_price_has_a_date_a_source_and_says_it_is_an_estimate():
    gx3 = [p for name, p in PRICES.items() if name.startswith("gx3-")]
    assert len(gx3) >= 5
    for price in gx3:
        assert price.hourly > 0 and price.gpus >= 1 and price.as_of
        assert price.estimate and "estimate" in price.source and "cost.prices" in price.source
    assert PRICES["local"].hourly == 0.0 and not PRICES["local"].estimate


def test_the_stacks_default_profile_is_priced():
    """Each shipped stack's spec prices the profile its VMs have by default."""
    assert stack_spec("ibm-vpc-gpu").default_profile() == "gx3-16x80x1l4" and "gx3-16x80x1l4" in PRICES
    assert stack_spec("local").default_profile() == "local" and PRICES["local"].hourly == 0.0


def test_the_profile_comes_from_the_variable_the_spec_names():
    ibm = stack_spec("ibm-vpc-gpu")
    config = load_config({"workspace": {"stack": "ibm-vpc-gpu", "variables": {"profile": "gx3-32x160x2l4"}}})
    cost = run_cost(destroyed("r1", profile=None), config, stack=ibm)
    assert cost.profile == "gx3-32x160x2l4" and cost.cost == pytest.approx(PRICES["gx3-32x160x2l4"].hourly)
    assert run_cost(destroyed("r1", profile=None), load_config({}), stack=None).cost is None  # no stack: no made-up cost


def test_cost_and_idle_cost_from_vm_seconds():
    cost = run_cost(destroyed("r1", profile="gx3-32x160x2l4"), load_config({}), stacks=STACKS)
    assert cost.cost == pytest.approx(PRICES["gx3-32x160x2l4"].hourly)  # one VM-hour
    assert cost.idle_cost == pytest.approx(PRICES["gx3-32x160x2l4"].hourly / 4)  # 900 of 3600 s outside the workload
    assert cost.final and cost.profile == "gx3-32x160x2l4"


def test_the_configs_prices_win_with_their_date_and_source():
    config = load_config(
        {
            "cost": {
                "currency": "EUR",
                "prices": {
                    "gx3-16x80x1l4": {"hourly": 2.5, "as_of": "2026-11-30", "source": "our contract"},
                    "gx3-new-x1l4": 1.0,
                },
            }
        }
    )
    table = price_table(config, STACKS)
    assert table["gx3-16x80x1l4"].hourly == 2.5 and table["gx3-16x80x1l4"].source == "our contract"
    assert table["gx3-16x80x1l4"].as_of == "2026-11-30" and not table["gx3-16x80x1l4"].estimate
    assert table["gx3-new-x1l4"].gpus == 1
    cost = run_cost(destroyed("r1"), config, stacks=STACKS)
    assert cost.cost == pytest.approx(2.5) and cost.currency == "EUR"


@pytest.mark.parametrize(
    "prices, key",
    [
        ({"gx3-16x80x1l4": {"hourly": -1}}, "cost.prices.gx3-16x80x1l4.hourly"),
        ({"gx3-16x80x1l4": {"hourly": 1, "as_of": "yesterday"}}, "cost.prices.gx3-16x80x1l4.as_of"),
        ({"gx3-16x80x1l4": {"cost": 1}}, "cost.prices.gx3-16x80x1l4"),
    ],
)
def test_bad_prices_name_the_key(prices, key):
    with pytest.raises(ConfigError) as info:
        load_config({"cost": {"prices": prices}})
    assert key in str(info.value)


def test_a_local_run_costs_nothing_but_has_its_vm_seconds():
    cost = run_cost(destroyed("r1", profile=None, total=42.0, workload=30.0), load_config({}), stack=stack_spec("local"))
    assert cost.profile == "local" and cost.cost == 0.0 and cost.vm_seconds == 42.0 and cost.idle_seconds == 12.0


def test_an_unknown_profile_has_no_made_up_cost():
    cost = run_cost(destroyed("r1", profile="gx9-unknown"), load_config({}), stacks=STACKS)
    assert cost.cost is None and cost.vm_seconds == 3600.0


@pytest.fixture
def ctx(local_config):
    context = Context(local_config())
    context.storage.create_bucket(context.config.state_bucket)
    return context


def test_runs_shows_cost_show_breaks_it_down_and_since_totals_by_workspace(ctx):
    hourly = PRICES["gx3-16x80x1l4"].hourly
    old = destroyed("gpu-old", created=now_utc() - timedelta(days=9))
    for record in (
        destroyed("gpu-1"),
        destroyed("gpu-2", total=1800.0, workload=1800.0),
        destroyed("cpu-1", "local", None, 60.0, 50.0),
        old,
    ):
        ctx.ledger.create(record)
    listing = runs_table(ctx)
    assert "COST" in listing.splitlines()[0] and f"{hourly:,.2f} USD" in listing and "gpu-old" in listing

    since = runs_table(ctx, since=now_utc() - timedelta(days=7))
    assert "gpu-old" not in since
    totals = since.split("totals by workspace:")[1].splitlines()
    gpu = next(line for line in totals if line.startswith("gpu "))
    assert gpu.split()[1] == "2" and f"{hourly * 1.5:,.2f} USD" in gpu and f"{hourly * 0.25:.4f} USD" in gpu
    local = next(line for line in totals if line.startswith("local "))
    assert "0.0000 USD" in local and "1m00s" in local

    open_run = RunRecord(run_id="gpu-open", workspace="gpu", engine="terraform")  # an open run: its duration so far
    ctx.ledger.create(open_run)
    assert "gpu-open" in runs_table(ctx, since=now_utc() - timedelta(days=1)) and "so far" in runs_table(ctx)

    details = run_details(ctx, ctx.ledger.get("gpu-1"))
    assert f"cost: {hourly:,.2f} USD = 3600.0 VM-seconds x {hourly:g} USD/h (gx3-16x80x1l4, 1 GPU per instance)" in details
    assert f"idle: {hourly / 4:.4f} USD (900.0 s outside the workload)" in details and "estimate" in details
