# One image for the four services, the trainer CronJob's client and the chaos
# Job. Each manifest says which to run: python -m services.<name>,
# python -m tools.train_job or python -m tools.chaos.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ACE_LOG_FORMAT=json

WORKDIR /app

# The pinned runtime dependencies first, so that a change to the sources
# reuses this layer.
COPY requirements.txt ./
RUN pip install --no-compile -r requirements.txt

COPY ace/ ace/
COPY services/ services/
COPY tools/ tools/

# A user without a shell or a home; the files stay root's and read-only, so
# the root filesystem can be mounted read-only: logs go to stderr, models and
# history to the volumes the manifests mount.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin ace
USER 10001:10001

EXPOSE 50051 50052 50053 50054
CMD ["python", "-m", "services.router"]
