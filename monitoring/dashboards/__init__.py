"""Dashboards as code: the Grafana JSON beside this file, and the CloudWatch dashboard body."""
