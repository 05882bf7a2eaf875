"""Marshmallow schemas of the request and response bodies (seed 000, "REST API Endpoints")."""
