"""Hushlab's application layer: the real-time engine, the Qt app and the command line."""
