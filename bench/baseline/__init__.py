"""The minimal submit that the real order submit is measured against (benchmark settings only):
a login-required, CSRF-protected view that validates a small form and inserts three rows."""
