"""Background tasks: created by any admin process, run by machine 0 only, resumable.

* `registry`: `@task("name")` registers an async step function under a name at import.
* `schedule`: `create_task(rt, name, params)` records a task and tells machine 0 about it.
* `runner`: machine 0's `TaskRunner` runs new tasks and resumes every unfinished one at start.

A task function gets a `TaskContext`: its `params`, the `state` it last checkpointed (None on the
first run), `checkpoint(state, done, total)` to save progress, and the `runtime`. Tasks are
exactly-once by construction: every step is idempotent (doing it twice leaves the same result),
and the state says which steps are behind; a task killed anywhere redoes at most the steps
since its last checkpoint.
"""
