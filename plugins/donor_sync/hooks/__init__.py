"""One Airflow hook per system: credentials from Airflow connections, everything else in the library."""
