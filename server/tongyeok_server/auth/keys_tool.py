"""``tongyeok-keys``: make an API key and the line of the keys file that lets it in.

    tongyeok-keys new crm-backend --scopes interpret,translate [--limit streams=50 ...] >> keys-and-lines.txt
    tongyeok-keys hash < key.txt

``new`` prints the key on the first line of stdout (give it to the backend;
it is stored nowhere) and the keys-file line on the second (append it to
the ``--api-keys`` file); labels go to stderr. ``hash`` prints the
keys-file hash of a key read from stdin, for keys made elsewhere.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tongyeok_server.auth.api_keys import ApiKeyFileError, hash_key, new_key, parse
from tongyeok_server.auth.caller import Scope


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="tongyeok-keys", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    new = sub.add_parser("new", help="make a key and its keys-file line")
    new.add_argument("key_id", metavar="ID", help="the key's id, as logs and limits name the caller (key:ID)")
    new.add_argument(
        "--scopes",
        default="interpret,translate",
        help=f"comma-separated, of: {', '.join(s.value for s in Scope)} (default: %(default)s)",
    )
    new.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="NAME=N",
        help="override a server default: streams=N, per_minute=N, hours_per_day=H (0 = unlimited)",
    )
    sub.add_parser("hash", help="the keys-file hash of a key read from stdin")
    args = parser.parse_args(argv)
    if args.command == "hash":
        key = sys.stdin.readline().strip()
        if not key:
            print("tongyeok-keys: no key on stdin", file=sys.stderr)
            return 2
        print(hash_key(key))
        return 0
    key = new_key()
    line = " ".join([args.key_id, hash_key(key), args.scopes, *args.limit])
    try:
        parse(line, "the new line")  # the same checks the server applies
    except ApiKeyFileError as e:
        print(f"tongyeok-keys: {e}", file=sys.stderr)
        return 2
    print("# the key (give it to the backend; it is stored nowhere):", file=sys.stderr)
    print(key)
    print("# the line for the --api-keys file:", file=sys.stderr)
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
