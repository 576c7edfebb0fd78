import sys

from ser_pipeline.warm import run_warm

if __name__ == "__main__":
    status = run_warm(sys.argv[1:])  # None: run here (see ser_pipeline/warm.py)
    if status is not None:
        sys.exit(status)
    from ser_pipeline.allocator import keep_freed_memory

    keep_freed_memory()  # before any large allocation (a warm server sets it for its children)
    from ser_pipeline.cli import main

    main()
