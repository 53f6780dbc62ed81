"""The web chat channel: the widget's WebSocket, its attachments and its static files."""
