"""The presize controller: ingest, profiles, decisions, actuation, rollback, anomalies."""
