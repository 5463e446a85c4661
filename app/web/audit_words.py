"""A room's record of actions in words: the ``audit_detail`` filter (manage and admin pages).

An audit entry's ``detail`` is stored as the machine text it always was (the audit API returns
it as is): ``slow=20, topic=…, visibility=private`` for a change, ``expires_in=None max_uses=5``
for an invitation, ``invite <id>`` for a join, a visibility for a creation, ``for 60 s`` for a
ban. It is read back at display time and said in the reader's language, so every record already
stored reads the same way; a detail in no known form is shown as it is (translated if it is one
of our sentences).
"""
import re
from datetime import timedelta

from flask_babel import format_timedelta, gettext, ngettext

from .i18n import translate

# The keys sort as slow < topic < visibility (room_views.change_room joins them so); a topic is
# free text, so it runs to ", visibility=" or the end.
_CHANGE = re.compile(r"(?:slow=(?P<slow>\d+))?(?:(?:, )?topic=(?P<topic>.*?))?"
                     r"(?:(?:, )?visibility=(?P<visibility>public|private))?", re.DOTALL)
_INVITE = re.compile(r"expires_in=(?P<expires>None|\d+) max_uses=(?P<uses>None|\d+)")
_JOIN = re.compile(r"invite [0-9a-fA-F]+")


def init_app(app):
    app.add_template_filter(audit_detail)


def audit_detail(entry):
    """The ``detail`` of audit ``entry`` (a dict with "action" and "detail") as words."""
    action, detail = entry.get("action"), entry.get("detail") or ""
    if not detail:
        return ""
    if action == "change":
        return _change(detail)
    if action == "create" and detail in ("public", "private"):
        return _visibility(detail)
    if action == "invite" and (found := _INVITE.fullmatch(detail)):
        return _invitation(found["expires"], found["uses"])
    if action == "join" and _JOIN.fullmatch(detail):
        return gettext("through an invitation link")
    return translate(detail)


def _change(detail):
    found = _CHANGE.fullmatch(detail)
    if not found or all(value is None for value in found.groupdict().values()):
        return translate(detail)
    parts = []
    if found["slow"] is not None:
        seconds = int(found["slow"])
        parts.append(gettext("Slow mode: %(seconds)d s", seconds=seconds) if seconds
                     else gettext("Slow mode: off"))
    if found["topic"] is not None:
        parts.append(gettext("Topic: %(topic)s", topic=found["topic"]) if found["topic"]
                     else gettext("Topic: none"))
    if found["visibility"]:
        parts.append(_visibility(found["visibility"]))
    return gettext("; ").join(parts)


def _visibility(value):
    return gettext("Visibility: private") if value == "private" else gettext("Visibility: public")


def _invitation(expires, uses):
    expiry = (gettext("never expires") if expires == "None" else gettext(
        "expires after %(time)s", time=format_timedelta(timedelta(seconds=int(expires)), threshold=1)))
    count = (gettext("unlimited uses") if uses == "None"
             else ngettext("up to %(num)d use", "up to %(num)d uses", int(uses)))
    return gettext("Invitation: %(expiry)s, %(uses)s", expiry=expiry, uses=count)
