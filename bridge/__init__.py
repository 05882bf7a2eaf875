"""AuraReels Social Bridge: OAuth, token vault and exactly-once publishing to six platforms."""

__version__ = "0.1.0"
