-- One database per server; the role comes from POSTGRES_USER.
CREATE DATABASE mlflow;
CREATE DATABASE prefect;
