"""Comparing run folders: reading runs and studies, the terminal table and CSV, figures, and the
HTML page rendered from a template (`python -m gan.compare`)."""
