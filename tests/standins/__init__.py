"""Local stand-ins for cloud services that cannot be installed on a developer machine."""
