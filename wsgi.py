from bridge.app import production_app; app = production_app()  # noqa: E702  (production: gunicorn wsgi:app)
