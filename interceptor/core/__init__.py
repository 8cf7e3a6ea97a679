"""
The core: options, addons and their events, logging, the master, and the
twistd service and plugin options.
"""
