# tspo-bids BIDS App container.
# Build: docker build -t tspo-bids .   Run: docker run --rm -v $PWD/data/test_bids:/data:ro -v $PWD/out:/out tspo-bids /data /out participant
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    TSPO_BIDS_CONTAINER=docker

WORKDIR /opt/tspo-bids
COPY pyproject.toml README.md ./
COPY tspo_bids ./tspo_bids
RUN python3 -m pip install --no-cache-dir . \
    && python3 -c "from tspo_bids.anat.template import load_template; load_template(2)"

RUN useradd --create-home --uid 1000 tspo
USER tspo
WORKDIR /tmp
ENTRYPOINT ["tspo-bids"]
