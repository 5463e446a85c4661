"""The page scripts' module graph: which files a page's entry module imports, to preload them.

A page loads one ES module (``static/js/room.js``) and the browser finds its imports only as
each file arrives: room.js, then messages.js, then ids.js… six levels deep, each a round trip
(~0.4 s on loopback under no load, seconds on a phone's slow network). A
``<link rel="modulepreload">`` per module in the page's ``<head>`` asks for all of them at once,
while the HTML is still parsing; the imports then find them already fetched and compiled.
Links, not inline code: the Content-Security-Policy (app/web/headers.py) allows no inline script.

Only static imports are followed (``import … from './x.js'``, ``export … from './x.js'``,
``import './x.js'``), relative to the importing file, inside ``static/``.
"""
import functools
import os
import posixpath
import re

from flask import current_app

# Static import and re-export statements (multi-line braces included) and side-effect imports.
_IMPORT = re.compile(r"""^\s*(?:(?:import|export)\b[^;'"]*?\bfrom|import)\s*['"](\.{1,2}/[^'"]+)['"]""",
                     re.MULTILINE)


def init_app(app):
    app.add_template_global(module_preloads)


def module_preloads(entry):
    """Return ``entry`` (a static path, str, e.g. ``"js/room.js"``) and the static paths it
    imports, directly or not (``"js/ids.js"``…), in breadth-first order: the most needed first.

    Read from the files once per process (the scripts do not change while it runs; a debug
    server's reloader starts a new process). A file that cannot be read is listed but not
    followed: the browser's import of it fails as it would without the preload.
    """
    return _reachable(current_app.static_folder, entry)


@functools.lru_cache(maxsize=32)
def _reachable(static_folder, entry):
    seen, order, queue = {entry}, [entry], [entry]
    while queue:
        path = queue.pop(0)
        for found in _imports(static_folder, path):
            if found not in seen:
                seen.add(found)
                order.append(found)
                queue.append(found)
    return tuple(order)


def _imports(static_folder, path):
    try:
        with open(os.path.join(static_folder, path), encoding="utf-8") as source:
            text = source.read()
    except OSError:
        return []
    found = []
    for relative in _IMPORT.findall(text):
        target = posixpath.normpath(posixpath.join(posixpath.dirname(path), relative))
        if not target.startswith("../"):  # inside static/ only
            found.append(target)
    return found
