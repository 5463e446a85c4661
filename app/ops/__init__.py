"""Operations: settings, where Redis is, the app's Redis clients, and what operators watch.

Owns the defaults of every setting (``settings``), Redis topologies: a URL, Sentinel, Cluster
(``topology``), the app's clients and services in one extension object (``services``), the
embedded Redis-protocol server (``embedded_redis``, standard library only: gunicorn.conf.py
loads it by path), Prometheus metrics (``metrics``), the outage log (``outage``), health probes (``health``), publishing
from other processes (``cli``) and Gunicorn's worker class (``worker``: gunicorn and gevent only,
loaded by path in gunicorn.conf.py; a reload that hands the streams over).

May import: ``app.rooms`` and ``app.people`` (the services ``services`` builds), Flask for the
blueprints. ``topology`` and ``embedded_redis`` import nothing from Flask.
"""
