"""Sandbox gateway: a real HTTP server that plays the SMS/WhatsApp providers for demos, tests and benchmarks."""

from dispatcher.sandbox.app import create_app

__all__ = ["create_app"]
