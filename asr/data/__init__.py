"""Manifests, corpora (LibriSpeech and the built-in synthetic one), datasets and batching."""
