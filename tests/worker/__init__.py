"""Tests of the model worker."""
