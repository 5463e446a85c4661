"""A browser-like HTTP client for tests: a cookie jar, the CSRF token, form and JSON posts."""
import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request

from .sse import SSEStream


class Browser:
    """One person's browser: its own session cookie, as a real tab would have."""

    def __init__(self, base_url, tls=None):
        self.base_url, self.tls = base_url, tls  # tls: an ssl context for an https base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = self._opener()
        self.token = None
        self.name = None

    def same_session_as(self, other):
        """Carry ``other``'s session (cookies and CSRF token), e.g. to another host."""
        self.jar, self.token, self.name = other.jar, other.token, other.name
        self.opener = self._opener()
        return self

    def _opener(self):
        return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect(),
                                           urllib.request.HTTPSHandler(context=self.tls))

    def request(self, method, path, form=None, body=None, headers=None, raw=None):
        """Return (status, headers, body bytes); never raises for an HTTP status. ``raw``: the
        body's bytes as they are (its Content-Type in ``headers``)."""
        headers = dict(headers or {})
        data = raw
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        elif body is not None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if self.token and method != "GET":
            headers.setdefault("X-CSRF-Token", self.token)
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
        try:
            with self.opener.open(req, timeout=10) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def sign_in(self, name):
        """Take ``name``; return the status (200, or 409 when someone online holds it)."""
        status, _, body = self.request("GET", "/session")
        self.token = json.loads(body)["csrf_token"]
        status, _, body = self.request("POST", "/session", body={"name": name})
        if status == 200:
            self.name = name
            self.token = json.loads(body)["csrf_token"]
        return status

    def post(self, room, text, key=None):
        headers = {"Idempotency-Key": key} if key else {}
        status, _, body = self.request("POST", "/rooms/%s/messages" % room, body={"text": text},
                                       headers=headers)
        return status, json.loads(body or b"{}")

    def direct(self, name, text, key=None):
        status, _, body = self.request("POST", "/users/%s/messages" % urllib.parse.quote(name),
                                       body={"text": text}, headers={"Idempotency-Key": key} if key else {})
        return status, json.loads(body or b"{}")

    def cookie(self):
        return "; ".join("%s=%s" % (c.name, c.value) for c in self.jar)

    def stream(self, room, headers=None, query=""):
        url = "%s/rooms/%s/events%s" % (self.base_url, room, "?" + query if query else "")
        return SSEStream(url, {"Cookie": self.cookie(), **(headers or {})})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # tests look at the 303 itself
