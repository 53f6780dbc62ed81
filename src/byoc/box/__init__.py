"""What CXone calls on the middleware (contract §2), mounted under `/integration/box`."""
