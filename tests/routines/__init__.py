"""Demonstrations, routines and healing: real Xvfb, real apps, real input (issue 17)."""
