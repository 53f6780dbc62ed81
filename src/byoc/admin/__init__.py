"""The admin API: what the business itself does through the middleware."""
