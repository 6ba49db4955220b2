"""The operator console: server-rendered pages over the admin API's own functions, for a browser."""
