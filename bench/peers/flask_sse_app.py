"""The flask-sse peer: the library's own blueprint for streams plus one publish route.

Run under Ripple's own Gunicorn config (gevent, same worker count) and the same Redis:

    REDIS_URL=redis://127.0.0.1:6379/0 WEB_CONCURRENCY=2 BIND=127.0.0.1:8001 \
        python -m gunicorn -c gunicorn.conf.py --pythonpath bench/peers flask_sse_app:app

Subscribe: GET /stream?channel=<room>   (flask-sse's blueprint: ``event:message`` + JSON data)
Publish:   POST /rooms/<room>/messages  with JSON {"text": "...", "user": "..."} -> 201 + message

The published data mirrors Ripple's message shape (id, ts, room, user, text); the id is a
per-process counter, not a room order: flask-sse has no history and no ordering of its own.
"""
import itertools
import os
import time

from flask import Flask, jsonify, request
from flask_sse import sse

app = Flask(__name__)
app.config["REDIS_URL"] = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
app.register_blueprint(sse, url_prefix="/stream")
_ids = itertools.count(1)


@app.post("/rooms/<room>/messages")
def publish(room):
    data = request.get_json(silent=True)
    if not isinstance(data, dict) or not isinstance(data.get("text"), str):
        return jsonify(error="The body must be a JSON object with a text."), 400
    ms = int(time.time() * 1000)
    message = {"id": "%d.%d" % (os.getpid(), next(_ids)), "ts": ms, "room": room,
               "user": str(data.get("user", "")), "text": data["text"]}
    sse.publish(message, type="message", channel=room)
    return jsonify(message), 201


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")
