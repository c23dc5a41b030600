"""Koepon's payment service (Flask): Stripe and KOMOJU payments, signed webhooks, refunds.

`create_app(config)` lives in webhooks.app; `python -m webhooks --port N` serves it under gunicorn.
"""
