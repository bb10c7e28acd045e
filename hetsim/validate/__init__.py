"""Is it true: run torch for real, calibrate device profiles, compare predictions with measurements."""
