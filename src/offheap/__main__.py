import sys

try:
    from .cli import main
except KeyboardInterrupt:       # Ctrl-C while Python imports the package
    print("offheap: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
