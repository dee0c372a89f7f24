"""VPL runtime: the engine that runs compiled plans on events."""
