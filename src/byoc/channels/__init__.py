"""Adapters to external platforms, behind one small protocol (`ChannelAdapter`)."""
