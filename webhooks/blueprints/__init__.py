"""One blueprint per concern: health, payments (fan/admin endpoints), Stripe and KOMOJU webhooks."""
