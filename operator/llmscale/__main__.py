import sys

from llmscale.cli import main

sys.exit(main())
