# Ripple in a container: Gunicorn with gevent workers; the embedded Redis unless REDIS_URL is set.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BIND=0.0.0.0:8000
WORKDIR /srv/ripple
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY app ./app
COPY static ./static
COPY templates ./templates
COPY translations ./translations
COPY gunicorn.conf.py .
RUN useradd --system --home /srv/ripple ripple && mkdir instance && chown ripple instance
USER ripple
VOLUME ["/srv/ripple/instance"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
STOPSIGNAL SIGTERM
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
