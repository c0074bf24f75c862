"""How long a record takes from a producer to a tailing reader on a one-partition topic, against
the number of batches the partition already holds: the broker's part of the bench's "at a Kafka
reader" figure, with no fraud-sla in it. Run by deploy/local/broker-fetch.sh.

    broker-fetch.py <bootstrap> <topic>

The reader is assigned the partition (no group to join) and fetches with fetch.wait.max.ms 10, as
the bench's reader does. Each fill record is produced and flushed alone: one batch each.
"""
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

bootstrap, topic = sys.argv[1], sys.argv[2]
producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
reader = Consumer({
    "bootstrap.servers": bootstrap, "group.id": "broker-fetch", "enable.auto.commit": False,
    "fetch.wait.max.ms": 10,
})
reader.assign([TopicPartition(topic, 0, 0)])
latencies, stop = [], threading.Event()


def read():
    while not stop.is_set():
        m = reader.poll(0.1)
        if m is not None and not m.error() and m.value().startswith(b"probe "):
            latencies.append(time.time() * 1000 - float(m.value()[6:]))


thread = threading.Thread(target=read)
thread.start()
filled = 0
print("| batches in the partition | n | p50 ms | p99 ms | max ms |\n|---:|---:|---:|---:|---:|")
for target in (0, 1000, 2000, 4000, 8000, 16000):
    while filled < target:
        producer.produce(topic, b"fill")
        producer.flush()
        filled += 1
    latencies.clear()
    for _ in range(100):
        producer.produce(topic, b"probe %f" % (time.time() * 1000))
        producer.flush()
        time.sleep(0.02)
    deadline = time.time() + 5
    while len(latencies) < 100 and time.time() < deadline:
        time.sleep(0.05)
    s = sorted(latencies)
    if not s:
        sys.exit(f"no probe read back after {filled} batches")
    print(f"| {filled:,} | {len(s)} | {s[len(s) // 2]:.1f} | {s[max(0, -(-len(s) * 99 // 100) - 1)]:.1f} | {s[-1]:.1f} |",
          flush=True)
stop.set()
thread.join()
reader.close()
