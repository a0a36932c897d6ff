import sys

from peer_service.main import build_parser, main

sys.exit(main(build_parser().parse_args()))
