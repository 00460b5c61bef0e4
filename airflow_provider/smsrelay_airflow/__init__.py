"""Apache Airflow provider for smsrelay."""
