"""The detection service: command line (and, later, the HTTP API and jobs)."""
