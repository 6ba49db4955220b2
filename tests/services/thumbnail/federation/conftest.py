"""Real federation peers for remote thumbnails: the download tests' two Synapses (A, whose
signing key mmr uses; B, which holds the remote media), reused rather than rebuilt."""

from tests.services.download.federation.conftest import (  # noqa: F401
    b_uploader_token,
    mmr_raw_config,
    serve_mmr,
)
