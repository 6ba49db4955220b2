"""A real S3 server for tests: SeaweedFS, started by the same code as `mmr cluster up`."""

from mmr.devcluster.seaweedfs import (
    ACCESS_KEY,
    REGION,
    SECRET_KEY,
    S3Server,
    find_weed,
    s3_server_from_env,
    start_seaweedfs,
)

__all__ = ["ACCESS_KEY", "REGION", "SECRET_KEY", "S3Server", "find_weed", "s3_server_from_env",
           "start_seaweedfs"]
