"""Models: the SLAYER network spec (YAML / Python), the builder, and import of trained lava-dl netx networks."""
