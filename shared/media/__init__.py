"""Media operations several services share (storing bytes as local media, ...)."""
