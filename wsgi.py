from bridge.app import create_app; app = create_app()  # noqa: E702  (production: gunicorn wsgi:app)
