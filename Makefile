# The two commands: `make up` starts the local stack with demo data, `make test` runs every test.
BIN := .venv/bin

.PHONY: up down test lint bootstrap

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

lint: bootstrap
	$(BIN)/ruff check koepon webhooks tests
	$(BIN)/koepon db lint

bootstrap:
	@bash scripts/bootstrap.sh
