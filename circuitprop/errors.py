"""The errors circuitprop raises for bad input (each message says what is wrong and where)."""


class NetworkError(ValueError):
    """An invalid network, architecture or model file (says what and where)."""


class ConfigError(ValueError):
    """A setting out of its declared range, of the wrong type, or unknown (names the setting)."""
