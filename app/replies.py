"""How an answer is shaped: JSON for programs and fetch, HTML pages for browsers."""
from flask import jsonify, request


def wants_json():
    """Tell whether the client asked for JSON rather than a page."""
    if request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def json_error(status, message, headers=None):
    """One JSON error: {"error": "<a sentence a person can read>"}."""
    response = jsonify(error=message)
    response.status_code = status
    if headers:
        response.headers.update(headers)
    return response
