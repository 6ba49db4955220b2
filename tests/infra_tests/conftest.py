from tests.infra.synapse_fixtures import synapse_factory, synapse_homeserver  # noqa: F401
