"""Webhook URLs: a redirect never leaves https for http, and a password in a URL is used but never
shown (lists, the admin API and page, the CLI). Real receivers on loopback (one speaking TLS
with a throwaway certificate), real Redis, the admin API of a real Gunicorn."""
import base64
import json
import ssl
import subprocess
import uuid

import pytest
import requests
import urllib3  # noqa: F401 - named by the warning filter

from app import create_app
from app.ops import topology
from app.ops.services import services
from app.webhooks import sender

from .conftest import LIMITS_OFF, TOKEN, post
from .receivers import Receiver
from .servers import wait_until
from .test_webhooks import admin, hook_client, hook_redis, hook_server, hooks_cli, register  # noqa: F401


@pytest.fixture
def tls_receiver(tmp_path):
    """A receiver speaking https on 127.0.0.1 that redirects every POST to http on its own
    host and port: a same-host downgrade."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    receiver = Receiver()
    receiver.answer = lambda request: (307, {"Location": "http://127.0.0.1:%d/plain" % receiver.port}, b"")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    with receiver:
        yield receiver


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_redirect_from_https_to_http_on_the_same_host_is_not_followed(tls_receiver):
    session = requests.Session()
    session.trust_env, session.verify = False, False  # the throwaway certificate (env CA bundles would win)
    url = "https://127.0.0.1:%d/hook" % tls_receiver.port
    outcome = sender.send(session, url, b"{}", {"Content-Type": "application/json"}, 10, 1000)
    assert outcome.status == 307 and not outcome.retry, outcome.error
    assert outcome.error == "Redirected from https to http: not followed."
    assert len(tls_receiver.requests()) == 1  # the https request only; nothing went in the clear


def test_a_password_in_a_webhook_url_is_used_but_never_shown(hook_server, register, room):
    with Receiver() as receiver:
        url = receiver.url.replace("http://", "http://bot:s3cret-pw@")
        hook = register(url, rooms=room)
        assert hook["url"] == receiver.url.replace("http://", "http://***@")
        listed = admin(hook_server.url, "GET", "/admin/webhooks")[1]["webhooks"]
        assert "s3cret-pw" not in json.dumps(listed) and "s3cret-pw" not in json.dumps(
            admin(hook_server.url, "GET", "/admin/webhooks/" + hook["id"])[1])
        assert post(hook_server.url, room, "hello", user="ann")[0] == 201
        got = wait_until(receiver.requests, 30, message="a delivery")[0]
    assert got.headers["Authorization"] == "Basic " + base64.b64encode(b"bot:s3cret-pw").decode()


def test_the_admin_page_and_the_cli_show_no_password_of_a_webhook_url(hook_redis):  # noqa: F811
    app = create_app({"TESTING": True, "REDIS_URL": hook_redis.url, "PUBLISH_TOKEN": TOKEN,
                      "SECRET_KEY": "test-secret", **LIMITS_OFF})
    client = app.test_client()
    name = "adm-" + uuid.uuid4().hex[:6]
    with app.app_context():
        services(app).accounts.create(name, "correct horse battery", admin=True)
        hook, _ = services(app).webhooks.hooks.add("https://bot:s3cret-pw@hooks.invalid/x")
    try:
        token = client.get("/session").get_json()["csrf_token"]
        client.post("/session", json={"name": name, "password": "correct horse battery"},
                    headers={"X-CSRF-Token": token})
        page = client.get("/admin", headers={"Accept": "text/html"}).get_data(as_text=True)
        assert "https://***@hooks.invalid/x" in page and "s3cret-pw" not in page
        listed = hooks_cli(hook_redis.url, "list")
        assert "***@hooks.invalid" in listed.stdout and "s3cret-pw" not in listed.stdout
    finally:
        with app.app_context():
            services(app).webhooks.hooks.remove(hook["id"])
        topology.close_client(services(app).redis)
