"""CTC speech recognition toolkit."""
