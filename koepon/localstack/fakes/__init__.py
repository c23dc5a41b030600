"""Local fakes of the payment providers' HTTP APIs and their webhook events."""
