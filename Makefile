# Thin aliases for ./dev, which does the work (and needs no make on a fresh machine).
.PHONY: run test lint migrate
run:
	./dev run
test:
	./dev test
lint:
	./dev lint
migrate:
	./dev migrate
