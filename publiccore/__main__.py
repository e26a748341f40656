from publiccore.cli import main

raise SystemExit(main())
