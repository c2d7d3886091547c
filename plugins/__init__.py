"""Assignment policies that ship with ChronosQ, one per module."""
