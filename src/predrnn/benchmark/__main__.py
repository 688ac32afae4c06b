"""``python -m predrnn.benchmark``: the benchmark command, or (``--worker``) one worker process."""

import sys

if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        from predrnn.benchmark.workers import worker_main

        sys.exit(worker_main())
    from predrnn.benchmark.commands import main

    sys.exit(main())
