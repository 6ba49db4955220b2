"""Talking to other Matrix servers: discovery, X-Matrix signing and checking, keys, multipart."""
