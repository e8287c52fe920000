"""``python -m evallint`` is the ``evallint`` command."""

from evallint.cli import run

if __name__ == "__main__":
    run()
