"""Session-wide fixtures live in tests/plugins/, one module per real part."""

pytest_plugins = [
    "tests.plugins.services",
    "tests.plugins.rabbitmq_node",
    "tests.plugins.topologies",
    "tests.plugins.emulator",
    "tests.plugins.worker",
    "tests.plugins.hosts",
    "tests.plugins.markers",
]
