"""Sensor kinds' settings as they arrive: strings, as SageMaker passes hyperparameters."""

from __future__ import annotations

import pytest

from pipelines.kinds.conv_ae.training import Settings as ConvSettings
from pipelines.sensors.settings import SeriesSettings, SettingError, parse


@pytest.mark.parametrize(("hyperparameters", "message"), [
    ({"merge_gap": "abc"}, "setting merge_gap='abc' is not a whole number"),
    ({"merge_gap": "2.5"}, "setting merge_gap='2.5' is not a whole number"),
    ({"normal_quantile": "high"}, "setting normal_quantile='high' is not a number"),
])
def test_a_value_of_the_wrong_type_is_refused_in_plain_words(hyperparameters, message):
    with pytest.raises(SettingError) as error:
        parse(SeriesSettings, hyperparameters)
    assert str(error.value) == message


def test_a_yes_no_setting_says_it_wants_true_or_false():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class WithSwitch:
        enabled: bool = False

    with pytest.raises(SettingError, match=r"^setting enabled='maybe' is not true or false$"):
        parse(WithSwitch, {"enabled": "maybe"})
    assert parse(WithSwitch, {"enabled": "Yes"}).enabled is True


def test_good_values_are_parsed_as_their_types():
    series = parse(SeriesSettings, {"merge_gap": " 7 ", "normal_quantile": "0.95"})
    assert (series.merge_gap, series.normal_quantile) == (7, 0.95)
    assert parse(ConvSettings, {"aggregate": "sum", "dropout": "0.1"}).aggregate == "sum"
