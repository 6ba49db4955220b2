from tests.services.archives.helpers import nodes  # noqa: F401  (the fixture)
