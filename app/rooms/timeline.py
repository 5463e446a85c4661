"""How a log of messages is laid out on a page: day separators and runs by one author.

The server renders a page this way (in UTC: it does not know the reader's time zone) and
static/js/timeline.js arranges the live page by the same rule in the reader's own time zone, so a
reload shows what the live page showed.
"""
from datetime import datetime, timedelta, timezone

GROUP_SECONDS = 300  # a message within this long of the one before, by the same author, joins its run


def arrange(items, author, now_ms):
    """Return ``items`` (dicts with "ts" in ms, oldest first) with day separators between them.

    Each item gets "cont": True when it continues the run of the one before it (same author,
    same day, within GROUP_SECONDS), so the page shows its author and time once. A separator is
    {"kind": "day", "day": "YYYY-MM-DD", "date": datetime.date, "label": "Today" | "Yesterday" |
    "Monday 30 November 2026"} (the page shows the first two translated, else the date in the reader's
    language).
    ``author`` reads an item's author.
    """
    today = _day(now_ms)
    laid_out, prev = [], None
    for item in items:
        day = _day(item["ts"])
        new_day = prev is None or _day(prev["ts"]) != day
        if new_day:
            laid_out.append({"kind": "day", "day": day.isoformat(), "date": day, "label": _label(day, today)})
        item["cont"] = (not new_day and author(prev) == author(item)
                        and item["ts"] - prev["ts"] < GROUP_SECONDS * 1000)
        item["iso"] = _utc(item["ts"]).isoformat(timespec="seconds")
        laid_out.append(item)
        prev = item
    return laid_out


def _utc(ms):
    return datetime.fromtimestamp(ms / 1000, timezone.utc)


def _day(ms):
    return _utc(ms).date()


def _label(day, today):
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    return "%s %d %s %d" % (day.strftime("%A"), day.day, day.strftime("%B"), day.year)
