"""Thin Airflow shells over the library: retry policy, DAG defaults and task callables."""
