"""Live figures (issue 31), the client side of benches/live.sh.

Against a running `chiso serve` with an ingest token, prints Markdown:

1. ingest: 100-event batches POSTed one after another; each answer comes
   once the new version is served with the default period's pages computed,
   so its latency is the time until the events are visible;
2. first page: after an ingest, the overview page of a week of 2025 not yet
   asked for (a new week each time);
3. sustained: one 100-event batch per second for SECONDS while wrk reads
   the default overview page with READERS connections; each batch is sent
   on its second whether or not the earlier ones were answered, and its
   delay is from that second to its answer.

Each batch: 30 new dossiers received and 30 of them digitized on
2025-12-31, and 40 dossiers in progress since December resolved, as the
one-stop software would send them. Standard library only.
"""
import csv
import io
import json
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

base, token, seconds, readers = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
run = str(int(time.time()))
rng = random.Random(31)


def request(path, data=None, headers=None):
    req = urllib.request.Request(base + path, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=900) as response:
        return response.read()


def sql(query):
    body = request("/api/sql?format=csv", query.encode(), {"Content-Type": "text/plain"})
    return list(csv.DictReader(io.StringIO(body.decode())))


pending = sql(
    "SELECT dossier_id, ward_code, procedure_code FROM dossiers "
    "WHERE finished_at IS NULL AND received_at >= TIMESTAMP '2025-12-01T00:00:00+07:00' "
    "ORDER BY dossier_id")
rng.shuffle(pending)
if len(pending) < 40:
    sys.exit(f"only {len(pending)} dossiers in progress since December: a larger city is needed")
templates = list(pending)
# Once the city's dossiers in progress are all resolved, the batches resolve
# the ones they received themselves, oldest first.
received = []


def batch(number):
    events = []
    day = "2025-12-31T"
    for i in range(30):
        template = rng.choice(templates)
        dossier = f"LIVE-{run}-{number}-{i}"
        minute = (number * 7 + i) % 50
        events.append({
            "event_id": f"live-{run}-{number}-r{i}", "dossier_id": dossier, "event_type": "received",
            "occurred_at": f"{day}08:{minute:02d}:00+07:00", "ward_code": template["ward_code"],
            "procedure_code": template["procedure_code"], "channel": rng.choice(["online", "direct"]),
            "due_at": "2026-01-06T17:00:00+07:00", "fee_required": False,
        })
        events.append({
            "event_id": f"live-{run}-{number}-d{i}", "dossier_id": dossier, "event_type": "digitized",
            "occurred_at": f"{day}09:{minute:02d}:00+07:00",
        })
    for i in range(40):
        dossier = pending.pop()["dossier_id"] if pending else received.pop(0)
        events.append({
            "event_id": f"live-{run}-{number}-x{i}", "dossier_id": dossier, "event_type": "resolved",
            "occurred_at": f"{day}10:{i:02d}:00+07:00", "e_result": rng.random() < 0.8,
        })
    received.extend(f"LIVE-{run}-{number}-{i}" for i in range(30))
    return "\n".join(json.dumps(e) for e in events).encode()


sent = 0


def post(body):
    started = time.perf_counter()
    answer = json.loads(request("/api/events", body, {
        "Content-Type": "application/x-ndjson", "Authorization": f"Bearer {token}"}))
    assert answer["accepted"] == 100, answer
    return time.perf_counter() - started


def ingest():
    global sent
    body = batch(sent)
    sent += 1
    return post(body)


def first_page(week):
    started = time.perf_counter()
    request(f"/?period=2025-W{week:02d}")
    return time.perf_counter() - started


def summary(values):
    values = sorted(values)
    p = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return f"{statistics.median(values):.3f} | {p(0.9):.3f} | {values[-1]:.3f}"


print("| measure | n | median s | p90 s | max s |")
print("|---|---|---|---|---|")
ingests = [ingest() for _ in range(10)]
print(f"| POST /api/events, 100 events, answered once served | {len(ingests)} | {summary(ingests)} |")

weeks = rng.sample(range(2, 52), 6)
pages, after = [], []
for week in weeks:
    after.append(ingest())
    pages.append(first_page(week))
print(f"| first overview page of a new week, right after an ingest | {len(pages)} | {summary(pages)} |")

# Sustained: batches on the second, pages read by wrk meanwhile.
delays, stop = [], threading.Event()


def sender():
    """Sends batch n at second n whether or not earlier ones were answered,
    as the one-stop software would: batches that arrive during an update
    wait for the next one."""
    global sent
    start = time.perf_counter()
    n, posting = 0, []
    while not stop.is_set():
        due = start + n
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        body = batch(sent)
        sent += 1

        def send(body=body, due=due):
            post(body)
            delays.append(time.perf_counter() - due)

        thread = threading.Thread(target=send)
        thread.start()
        posting.append(thread)
        n += 1
    for thread in posting:
        thread.join()


wrk = subprocess.Popen(["wrk", "-t2", f"-c{readers}", f"-d{seconds}s", "--latency", "-H", "Connection: keep-alive",
                        base + "/"], stdout=subprocess.PIPE, text=True)
thread = threading.Thread(target=sender)
thread.start()
out, _ = wrk.communicate()
stop.set()
thread.join()
print(f"| sustained: a batch each second for {seconds} s, its delay to visible | {len(delays)} | {summary(delays)} |")
lat = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip().startswith(("50%", "90%", "99%"))}
rps = next((line.split()[1] for line in out.splitlines() if line.startswith("Requests/sec")), "?")
print()
print(f"Pages meanwhile (wrk, {readers} connections, overview of the default period): "
      f"{rps} requests/s, p50 {lat.get('50%')}, p90 {lat.get('90%')}, p99 {lat.get('99%')}.")
