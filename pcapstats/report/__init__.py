"""Rendering and export only: terminal, JSON, HTML reports and table files."""
