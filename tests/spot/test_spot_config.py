"""The ``spot`` config section: defaults, and every bad value named with its fix."""

from __future__ import annotations

import pytest

from ephemera.assembly import validate
from ephemera.config.spot import SpotFallback, SpotSection
from ephemera.errors import ConfigError


def test_defaults_recover_twice_then_fail():
    spot = validate({}).section(SpotSection)
    assert spot.max_recoveries == 2
    assert spot.fallback == SpotFallback.NONE


def test_on_demand_fallback_and_no_recovery_are_taken():
    spot = validate({"spot": {"max_recoveries": 0, "fallback": "on_demand"}}).section(SpotSection)
    assert spot.max_recoveries == 0
    assert spot.fallback == SpotFallback.ON_DEMAND


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({"max_recoveries": -1}, "spot.max_recoveries", "max_recoveries: 2"),
        ({"max_recoveries": True}, "spot.max_recoveries", "max_recoveries: 2"),
        ({"max_recoveries": "2"}, "spot.max_recoveries", "max_recoveries: 2"),
        ({"fallback": "ondemand"}, "spot.fallback", "'none' or 'on_demand'"),
        ({"fallback": False}, "spot.fallback", "'none' or 'on_demand'"),
        ({"retries": 3}, "spot.retries", "unknown key"),
    ],
)
def test_bad_spot_values_name_the_key_and_the_fix(raw, field, words):
    with pytest.raises(ConfigError) as info:
        validate({"spot": raw})
    assert info.value.field == field
    assert words in str(info.value)
