"""Outbound networking that cannot be steered at internal addresses (SSRF defence).

`ip_policy` decides which IP addresses may be connected to; `safe_transport` is an httpx
transport that resolves host names itself, checks every resolved address against a policy at
connect time and connects to the checked address (Host and TLS SNI keep the name). Redirects,
DNS rebinding and odd IP spellings all meet the check because it sits where sockets are opened.
"""
