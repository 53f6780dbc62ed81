"""byoc: Bring Your Own Channel middleware for NICE CXone Digital Engagement."""

__version__ = "0.1.0"
