from publiccore.app.cli import main

raise SystemExit(main())
