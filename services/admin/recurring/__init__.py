"""Machine 0's recurring purges (remote media, thumbnails, URL previews, expired upload IDs).

Each round is recorded and run as a background task (`shared/tasks/`), so it shows in
`tasks/all` with its outcome like any admin task.
"""
