"""``python -m evallint`` is the ``evallint`` command."""

from evallint.cli import main

if __name__ == "__main__":
    main(prog_name="evallint")
