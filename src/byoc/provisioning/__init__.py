"""Provisioning: DE channels with their local mapping, the Action URL pages, custom fields,
what the CXone administrator enters, and region discovery."""
