"""A real multi-process cluster on one machine (`mmr cluster up`), and the parts of it the test
suite starts too: SeaweedFS S3, nginx from the repo's template, PostgreSQL and Redis."""
