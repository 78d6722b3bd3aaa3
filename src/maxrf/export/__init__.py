"""Files other tools open: map images (:mod:`maxrf.export.images`) and more."""
