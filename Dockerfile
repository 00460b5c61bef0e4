# The smsrelay GitHub Action. The runner builds it per job with this file's folder, the
# repository root, as the build context (.dockerignore keeps that context small); releases
# push it prebuilt to GHCR (.github/workflows/release.yml). It holds the core and its
# runtime dependencies only: no Airflow, no Salesforce.

# ASSUMPTION: the OCI index digest of python:3.11-slim-bookworm (Python 3.11.16), as several
# public repositories record it; not checked against the registry from here. An index digest
# pins every platform, which the multi-arch release build needs. Check it with
#   docker buildx imagetools inspect python:3.11-slim-bookworm
# (the top "Digest:" line, and linux/arm64 among its manifests); Dependabot's docker
# ecosystem moves it by reviewed pull requests.
FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91 AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY locks/action.txt locks/build.txt locks/
COPY smsrelay/ smsrelay/
COPY action/ action/
# The same install the contract tests run (action/install.py): hashed locks, no deps
# resolved at build time, the core as a non-editable wheel, pruned.
RUN python action/install.py /opt/venv

FROM python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91
LABEL org.opencontainers.image.title="smsrelay-action" \
      org.opencontainers.image.description="Send SMS from GitHub workflows through Kudosity, SMSKit, ME-SMS or Kaleyra" \
      org.opencontainers.image.licenses="Apache-2.0"
# Unbuffered, so ::commands:: land in order; no .pyc writes at run time; and
# PYTHONSAFEPATH keeps the workspace (the container's working directory, which
# may hold the user's own "action" package) off sys.path.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONSAFEPATH=1 \
    PYTHONPATH=/opt/smsrelay-action
COPY --from=build /opt/venv /opt/venv
COPY action/ /opt/smsrelay-action/action/
# Compile once at build time, and fail the build if the entrypoint cannot import.
RUN /opt/venv/bin/python -m compileall -q /opt/smsrelay-action && /opt/venv/bin/python -c "import action.main"
ENTRYPOINT ["/opt/venv/bin/python", "-m", "action.main"]
