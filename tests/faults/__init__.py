"""Fault injection: broken endpoints, a killed agent process, a killed worker."""
