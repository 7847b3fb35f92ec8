"""The Python atproto SDK's firehose client reads a PDS's subscribeRepos from cursor 0.

Usage: firehose_smoke.py <pds_url> <expected_event_count>

Parses every frame with the SDK's models (commit blocks through its CAR reader, each op's
record decoded from the blocks), checks seq runs 1..N with no gap, and prints a summary line.
Exits non-zero on any failure or if fewer than N events arrive within 30 s.
"""

import sys
import threading

from atproto import CAR, FirehoseSubscribeReposClient, models, parse_subscribe_repos_message


def main() -> int:
    url, expected = sys.argv[1], int(sys.argv[2])
    base = url.replace("http://", "ws://").rstrip("/") + "/xrpc"
    client = FirehoseSubscribeReposClient(
        params=models.ComAtprotoSyncSubscribeRepos.Params(cursor=0), base_uri=base
    )
    seqs: list[int] = []
    kinds: dict[str, int] = {}
    records = 0
    failure: list[str] = []

    def on_message(message) -> None:
        nonlocal records
        try:
            event = parse_subscribe_repos_message(message)
            kind = type(event).__name__
            kinds[kind] = kinds.get(kind, 0) + 1
            seqs.append(event.seq)
            if isinstance(event, models.ComAtprotoSyncSubscribeRepos.Commit):
                car = CAR.from_bytes(event.blocks)
                if str(car.root) != str(event.commit):
                    failure.append(f"seq {event.seq}: CAR root {car.root} != commit {event.commit}")
                for op in event.ops:
                    if op.action in ("create", "update"):
                        if car.blocks.get(op.cid) is None:
                            failure.append(f"seq {event.seq}: record {op.path} not in blocks")
                        else:
                            records += 1
            if len(seqs) >= expected:
                client.stop()
        except Exception as e:  # noqa: BLE001 - report any parse failure and stop
            failure.append(f"{type(e).__name__}: {e}")
            client.stop()

    timer = threading.Timer(30, client.stop)
    timer.start()
    client.start(on_message)
    timer.cancel()

    if failure:
        print("firehose failures:", failure[:5])
        return 1
    if seqs != list(range(1, expected + 1)):
        print(f"expected seqs 1..{expected}, got {seqs[:10]}... ({len(seqs)} events)")
        return 1
    print(f"python firehose smoke: ok {len(seqs)} events {sorted(kinds.items())} records={records}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
