"""The conversation domain: threads, messages and who may write into them."""
