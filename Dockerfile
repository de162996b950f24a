# syntax=docker/dockerfile:1
#
# One image for every helpdesk process. The command picks the process:
#   ingest run | tickets run | triggers run | notify run | portal run
#   sh -c "python -m hdkit.topics --partitions 6 && tickets migrate && ..."   (the setup job)
# Build:  docker build -t ghcr.io/helpdesk/helpdesk:latest .
#
# Stage 1 installs uv from PyPI and builds /app/.venv from uv.lock (no dev group, every workspace
# member, installed as wheels rather than editable links, so the runtime stage needs no source tree).
# Stage 2 copies only that venv onto a fresh slim image and runs as uid 10001.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build

# The uv that wrote uv.lock; bump both together.
ARG UV_VERSION=0.13.9

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

RUN pip install "uv==${UV_VERSION}"

WORKDIR /src
# What goes in is filtered by .dockerignore (no .venv, caches, tests, deploy files, .git).
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --all-packages --no-editable \
 && /app/.venv/bin/python -c "import contracts, hdkit"


FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="helpdesk" \
      org.opencontainers.image.description="Helpdesk services: ingest, tickets, triggers, notify, portal" \
      org.opencontainers.image.source="https://github.com/helpdesk/helpdesk"

RUN groupadd --system --gid 10001 helpdesk \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin helpdesk

# Owned by root and not writable by the service user: the code cannot be changed at run time.
COPY --from=build /app/.venv /app/.venv

ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HELPDESK_HTTP_HOST=0.0.0.0

WORKDIR /app
USER 10001:10001

# HTTP: portal 8000, ingest 8001, tickets 8002, triggers 8003, notify 8004; ingest SMTP 2525.
EXPOSE 8000 8001 8002 8003 8004 2525

# No service is the obvious default: name one as the command (compose and k8s `command:`).
# Without one, the container lists the commands it has and exits non-zero.
CMD ["sh", "-c", "echo 'helpdesk image: give a command, e.g. \"tickets run\"; one of: ingest|tickets|triggers|notify|portal run|migrate, python -m hdkit.topics' >&2; exit 64"]
