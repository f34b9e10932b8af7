"""Offline datasets (nothing is ever downloaded at run time)."""
