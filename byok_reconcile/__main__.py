from __future__ import annotations

from byok_reconcile.cli import main

if __name__ == "__main__":
    main()
