"""Third-party fingerprinters run side by side with Vigie (installed at run time)."""
