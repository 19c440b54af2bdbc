from datetime import UTC, datetime, timedelta

import pytest

from kargo.durations import DurationError, duration_seconds, format_duration, parse_duration
from kargo.times import is_rfc3339, parse_rfc3339, rfc3339


@pytest.mark.parametrize(
    "text,expected",
    [
        ("5m0s", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("-1.5s", timedelta(seconds=-1.5)),
        ("300ms", timedelta(milliseconds=300)),
        ("1us", timedelta(microseconds=1)),
        ("1µs", timedelta(microseconds=1)),
        (".5s", timedelta(milliseconds=500)),
        ("0", timedelta(0)),
        ("+3s", timedelta(seconds=3)),
    ],
)
def test_go_durations_parse(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "5", "1d", "2w", "1y", "1h-5m", "1h 5m", "h", "1x", "9999999h"]
)
def test_what_go_refuses_is_refused(text):
    with pytest.raises(DurationError):
        parse_duration(text)


@pytest.mark.parametrize(
    "value,text",
    [
        (timedelta(minutes=5), "5m0s"),
        (timedelta(hours=1, minutes=30), "1h30m0s"),
        (timedelta(seconds=1.5), "1.5s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(0), "0s"),
        (timedelta(seconds=-90), "-1m30s"),
    ],
)
def test_durations_format_as_go_prints_them(value, text):
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_optional_durations_count_as_zero_seconds():
    assert duration_seconds(None) == 0.0
    assert duration_seconds("") == 0.0
    assert duration_seconds("1m") == 60.0


def test_rfc3339_round_trip_in_utc():
    when = datetime(2024, 7, 15, 22, 13, 57, tzinfo=UTC)
    assert rfc3339(when) == "2024-07-15T22:13:57Z"
    assert parse_rfc3339("2024-07-15T22:13:57Z") == when
    assert parse_rfc3339("2024-07-16T00:13:57+02:00") == when
    assert parse_rfc3339("") is None
    assert parse_rfc3339("not a date") is None


def test_rfc3339_validation_is_strict():
    assert is_rfc3339("2024-07-15T22:13:57Z")
    assert is_rfc3339("2024-07-15t22:13:57.5z")
    assert not is_rfc3339("2024-07-15")
    assert not is_rfc3339("2024-13-45T25:00:00Z")
