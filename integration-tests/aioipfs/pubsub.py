"""aioipfs 0.7 (PyPI) publishing and subscribing through an ipfsbench-node daemon's API.

Driven by integration-tests/tests/aioipfs.rs. Its one argument is a JSON object:
{"api": "/ip4/127.0.0.1/tcp/PORT", "topics": {"<topic>": ["<message>", ...]}}.
For each topic it subscribes, publishes warm-up messages until one comes back (the
subscription is then live), publishes the listed messages and reads them back. It prints one
JSON line: which pubsub form aioipfs chose (`post011`), and per topic the messages received
after the warm-up (`from`, `data`, `topicIDs`, as aioipfs decoded them) and `pubsub/peers`'s
answer. A failure prints {"error": "..."} and exits with status 1.

In that form aioipfs percent-encodes `pub`'s topic and data itself, and aiohttp encodes them
again, so they arrive intact only when quoting leaves them alone (letters, digits, `_.-~/`),
against any Kubo as against us; the test's topics and messages keep to those.
"""

import asyncio
import json
import sys

import aioipfs

WARM_UP = "warm-up-"
TIMEOUT_S = 60


async def round_trip(client, topic, messages):
    received = []
    ready = asyncio.Event()
    done = asyncio.Event()

    async def subscribe():
        async for msg in client.pubsub.sub(topic):
            data = msg["data"].decode()
            if data.startswith(WARM_UP):
                ready.set()
                continue
            received.append({
                "from": msg["from"].decode() if isinstance(msg["from"], bytes) else msg["from"],
                "data": data,
                "topicIDs": msg["topicIDs"],
            })
            if len(received) == len(messages):
                done.set()
                return

    sub = asyncio.create_task(subscribe())
    try:
        n = 0
        while not ready.is_set():
            if sub.done():
                sub.result()
                raise RuntimeError("the subscription ended")
            await client.pubsub.pub(topic, f"{WARM_UP}{n}")
            n += 1
            try:
                await asyncio.wait_for(ready.wait(), 0.2)
            except asyncio.TimeoutError:
                pass
        # Warm-up messages still in flight are skipped by the subscriber.
        for m in messages:
            await client.pubsub.pub(topic, m)
        waiting = asyncio.create_task(done.wait())
        finished, _ = await asyncio.wait({waiting, sub}, return_when=asyncio.FIRST_COMPLETED)
        if sub in finished and not done.is_set():
            sub.result()
            raise RuntimeError("the subscription ended early")
        peers = await client.pubsub.peers(topic)
    finally:
        sub.cancel()
    return {"messages": received, "peers": peers}


async def main(spec):
    client = aioipfs.AsyncIPFS(maddr=spec["api"])
    try:
        out = {"post011": await client.agent_version_post011(), "topics": {}}
        for topic, messages in spec["topics"].items():
            out["topics"][topic] = await asyncio.wait_for(
                round_trip(client, topic, messages), TIMEOUT_S)
        return out
    finally:
        await client.close()


if __name__ == "__main__":
    try:
        result = asyncio.run(main(json.loads(sys.argv[1])))
    except BaseException as e:  # noqa: B902 (anything, reported to the test)
        detail = getattr(e, "message", None) or str(e)
        print(json.dumps({"error": f"{type(e).__name__}: {detail}"}))
        sys.exit(1)
    print(json.dumps(result))
