"""Files other tools open: images, tables and data exports of maxrf results."""
