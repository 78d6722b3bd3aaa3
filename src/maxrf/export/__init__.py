"""Exports of a datastack to files other tools open (HyperSpy, Fiji, h5py, spreadsheets, images)."""
