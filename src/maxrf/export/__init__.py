"""Exports of maxrf results to files other tools open (images, overlays, tables)."""
