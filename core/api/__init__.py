"""The HTTP API (SPEC §7, §10): JSON in and out, camelCase fields."""
