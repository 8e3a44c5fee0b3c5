from asymformer.cli import main

raise SystemExit(main())
