"""HTTP concerns shared by every router: problem+json errors and request limits."""
