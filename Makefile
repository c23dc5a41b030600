# The two commands: `make up` starts the local stack with demo data, `make test` runs every test.
BIN := .venv/bin

.PHONY: up down test lint screenshots bootstrap

up: bootstrap
	$(BIN)/koepon up

down:
	$(BIN)/koepon down

test: bootstrap
	$(BIN)/koepon db start
	$(BIN)/ruff check koepon webhooks tests
	$(BIN)/koepon db lint
	$(BIN)/koepon db verify
	$(BIN)/pytest

# Rewrite docs/screenshots/*.png (the README's) from the console's browser journeys.
screenshots: bootstrap
	$(BIN)/koepon db start
	KOEPON_SCREENSHOTS=1 $(BIN)/pytest tests/console -q

lint: bootstrap
	$(BIN)/ruff check koepon webhooks tests
	$(BIN)/koepon db lint

bootstrap:
	@bash scripts/bootstrap.sh
