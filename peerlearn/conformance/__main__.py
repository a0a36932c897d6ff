import sys

from peerlearn.conformance import main

sys.exit(main())
