"""Alertmanager's time intervals (`time_intervals:` / `mute_time_intervals:`): when a route
may notify (`active_time_intervals`) or must stay quiet (`mute_time_intervals`)."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, field_validator

_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"]


def _minutes(text: str) -> int:
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59:
        raise ValueError(f"invalid time {text!r}: use HH:MM")
    return int(m.group(1)) * 60 + int(m.group(2))


def _ranges(items: list[str], names: list[str] | None, lo: int, hi: int) -> list[tuple[int, int]]:
    out = []
    for item in items:
        parts = str(item).split(":")
        vals = []
        for p in parts:
            p = p.strip().lower()
            if names and p in names:
                vals.append(names.index(p) + lo)
            else:
                vals.append(int(p))
        a, b = (vals[0], vals[-1])
        if not names and lo >= 1 and (a < -31 or b > hi):
            raise ValueError(f"{item!r} is out of range")
        out.append((a, b))
    return out


class TimeRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_time: str
    end_time: str

    @field_validator("start_time", "end_time")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        _minutes(v)
        return v


class TimeInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    times: list[TimeRange] = []
    weekdays: list[str] = []
    days_of_month: list[str] = []
    months: list[str] = []
    years: list[str] = []
    location: str = "UTC"

    @field_validator("weekdays", "days_of_month", "months", "years", mode="before")
    @classmethod
    def _strings(cls, v: list) -> list[str]:
        return [str(x) for x in v]

    def contains(self, t: float) -> bool:
        dt = datetime.fromtimestamp(t, ZoneInfo(self.location) if self.location != "Local" else None)
        if self.times:
            minute = dt.hour * 60 + dt.minute
            if not any(_minutes(r.start_time) <= minute < _minutes(r.end_time) for r in self.times):
                return False
        if self.weekdays:
            day = dt.weekday()
            if not any(a <= day <= b for a, b in _ranges(self.weekdays, _DAYS, 0, 6)):
                return False
        if self.days_of_month:
            import calendar

            last = calendar.monthrange(dt.year, dt.month)[1]
            ok = False
            for a, b in _ranges(self.days_of_month, None, 1, 31):
                a = a if a > 0 else last + a + 1
                b = b if b > 0 else last + b + 1
                ok |= a <= dt.day <= b
            if not ok:
                return False
        if self.months and not any(a <= dt.month <= b for a, b in _ranges(self.months, _MONTHS, 1, 12)):
            return False
        return not (self.years and not any(a <= dt.year <= b for a, b in _ranges(self.years, None, 0, 9999)))


class NamedTimeInterval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    time_intervals: list[TimeInterval] = []

    def contains(self, t: float) -> bool:
        return any(ti.contains(t) for ti in self.time_intervals)
