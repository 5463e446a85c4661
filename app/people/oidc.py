"""Signing in with an OpenID Connect provider (Authlib): the authorization-code flow with PKCE.

On when RIPPLE_OIDC_ISSUER, RIPPLE_OIDC_CLIENT_ID and RIPPLE_OIDC_CLIENT_SECRET are set; the
sign-in form then offers "Sign in with <RIPPLE_OIDC_NAME>". The provider's ``sub`` is the
person's stable id (``GET /session`` kind "token"); their display name is the provider's
``preferred_username``, ``name`` or ``nickname`` (the name rules apply). Register
``<this site>/oidc/callback`` as the client's redirect URI.
"""
import logging
import time

from flask import Blueprint, abort, current_app, redirect, request, session, url_for

from ..ops.services import services
from ..rooms import messages
from ..web import targets
from . import identity

# Marks a sentence for the catalogue; the web layer answers it in the reader's language
# (app/web/i18n.py, translate).
N_ = str

logger = logging.getLogger(__name__)
bp = Blueprint("oidc", __name__)

SENTENCES = {
    "off": N_("Signing in with another service is not set up here."),
    "failed": N_("Signing in with %s did not work (%s). Please try again."),
    "unreachable": N_("%s cannot be reached right now. Please try again shortly."),
    "name": N_("%s gave a name that cannot be used here: %s"),
    "taken": N_("Your name from %s is in use here: %s"),
}


def init_app(app):
    cfg = app.config
    if not (cfg.get("OIDC_ISSUER") and cfg.get("OIDC_CLIENT_ID") and cfg.get("OIDC_CLIENT_SECRET")):
        return
    # Authlib (and requests) only where a provider is set up: importing them took ~0.1 s of
    # every worker's boot, which a reload's reconnecting clients wait for.
    from authlib.integrations.flask_client import OAuth
    oauth = OAuth(app)
    oauth.register(
        "oidc", client_id=cfg["OIDC_CLIENT_ID"], client_secret=cfg["OIDC_CLIENT_SECRET"],
        server_metadata_url=cfg["OIDC_ISSUER"].rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256",
                       "timeout": float(cfg["REDIS_SOCKET_TIMEOUT"])})
    services(app).oidc = oauth


@bp.app_context_processor
def _label():
    """``oidc_label``: the provider's name for the sign-in button, or None when off."""
    on = services().oidc is not None
    return {"oidc_label": current_app.config["OIDC_NAME"] if on else None}


def _client():
    oauth = services().oidc
    if oauth is None:
        abort(404, SENTENCES["off"])
    return oauth.oidc


@bp.get("/oidc/login")
def login():
    """Send the browser to the provider (PKCE, state and nonce kept in the session)."""
    client = _client()
    from authlib.integrations.base_client.errors import OAuthError  # loaded by init_app
    session["oidc_next"] = targets.local(request.args.get("next"), url_for("pages.lobby"))
    try:
        return client.authorize_redirect(url_for("oidc.callback", _external=True))
    except (OSError, ValueError, OAuthError) as exc:  # requests' errors are OSErrors
        logger.warning("oidc provider unreachable error=%s", exc)
        abort(503, SENTENCES["unreachable"] % current_app.config["OIDC_NAME"])


@bp.get("/oidc/callback")
def callback():
    """The provider sends the browser back: trade the code for tokens, sign in, 303 onwards."""
    client = _client()
    from authlib.integrations.base_client.errors import OAuthError  # loaded by init_app
    label = current_app.config["OIDC_NAME"]
    target = targets.local(session.pop("oidc_next", None), url_for("pages.lobby"))
    try:
        token = client.authorize_access_token()
    except OAuthError as exc:
        abort(400, SENTENCES["failed"] % (label, exc.description or exc.error))
    except (OSError, ValueError) as exc:
        logger.warning("oidc token exchange failed error=%s", exc)
        abort(503, SENTENCES["unreachable"] % label)
    info = token.get("userinfo") or {}
    sub = info.get("sub")
    if not isinstance(sub, str) or not sub:
        abort(400, SENTENCES["failed"] % (label, "no subject"))
    shown = info.get("preferred_username") or info.get("name") or info.get("nickname") or sub
    try:
        name = messages.check_name(str(shown)[:64])
        lifetime = int(getattr(current_app.permanent_session_lifetime, "total_seconds", lambda: 0)())
        identity.sign_in(name, token={"sub": sub, "exp": int(time.time()) + lifetime, "key": "oidc\0" + sub,
                                          "via": "oidc"})
    except messages.Invalid as exc:
        abort(exc.status, SENTENCES["name"] % (label, exc))
    except identity.NameTaken:
        abort(409, SENTENCES["taken"] % (label, identity.taken(name)))
    return redirect(target, 303)
