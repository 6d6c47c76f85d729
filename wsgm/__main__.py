"""``python -m wsgm``: the same CLI as the ``wsgm`` console script."""

from wsgm.cli import main

raise SystemExit(main())
