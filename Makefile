# The two entry points of the README. Both install what they need first.
.PHONY: demo test bootstrap lint

bootstrap:
	@scripts/bootstrap

demo: bootstrap
	.venv/bin/decloud demo

lint: bootstrap
	.venv/bin/ruff check src tests
	.venv/bin/mypy

test: lint
	.venv/bin/pytest -q -n 2 --dist loadfile -p no:cacheprovider
