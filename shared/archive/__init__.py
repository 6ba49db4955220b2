"""matrix-media-repo's v2 archive format: export parts written and read a member at a time."""
