"""The credentials of an ``Authorization: Bearer <token>`` header (RFC 6750, 2.1).

The scheme's name is case-insensitive (RFC 7235, 2.1: "bearer" and "BEARER" are the same), so a
client that lower-cases it is still recognised; the token itself is compared exactly.
"""

SCHEME = "bearer "


def credentials(header):
    """The token of ``header`` (str: an Authorization header's value, or None) when its scheme is
    Bearer, surrounding whitespace removed; None for any other scheme, or none."""
    if not header or header[:7].lower() != SCHEME:
        return None
    return header[7:].strip()
