"""The thumbnail worker: what runs in the sandboxed worker processes, and the pool that runs them.

`render.render_thumbnail(job)` is the one job (decode, orient, resize, encode), `decoders` opens
hostile input under the configured limits, `jobs` holds the picklable job and its results, and
`pool.WorkerPool` starts, limits and replaces the processes. Nothing here touches the database,
the datastores or the network: the service side (`services/thumbnail/`) does that.
"""
