#!/usr/bin/env python3
"""Console ingest memory: six devices upload at once, each a chunk that inflates to 15 MiB.

Start a console (netward-console serve --config CFG), then:
    scripts/bench-console-ingest.py https://127.0.0.1:8443 ADMIN_PASSWORD PID
It signs in, enrolls six devices, sends their six chunks at once and prints
the console's VmRSS/VmHWM before and after (Linux /proc; VmHWM is reset
first), the answers, the time and the transactions the console counted.
(Six *devices*: one device's uploads are taken one at a time, so a
one-device run never measures concurrent ingest.)
"""
import gzip, http.cookiejar, json, ssl, sys, threading, time, urllib.error, urllib.request

base, pw, pid = sys.argv[1], sys.argv[2], sys.argv[3]
op = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ssl._create_unverified_context()),
                                 urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

def call(method, path, body=None, headers={}):
    r = urllib.request.Request(base + path, data=None if body is None else json.dumps(body).encode(), method=method, headers=headers)
    return json.load(op.open(r))

def mem(label):
    vals = [l.split()[1] for l in open(f"/proc/{pid}/status") if l.startswith(("VmRSS", "VmHWM"))]
    print(f"{label}: VmHWM {int(vals[0])//1024} MB, VmRSS {int(vals[1])//1024} MB")

csrf = call("POST", "/api/login", {"name": "admin", "password": pw})["csrfToken"]
key = call("POST", "/api/enrollment-keys", {"name": "bench"}, {"X-CSRF-Token": csrf})["key"]
now = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime())
devs, toks, bodies = [], [], []
for i in range(6):
    dev = "bench-%d-%d" % (int(time.time()), i)
    devs.append(dev)
    toks.append(call("POST", "/v1/enroll", {"key": key, "deviceId": dev, "deviceName": dev})["token"])
    line = ('{"Timestamp":"%s","DeviceId":"%s","ActionType":"ConnectionSuccess","RemoteUrl":"www.dropbox.com","BytesSent":1}\n' % (now, dev)).encode()
    raw = line * ((15 << 20) // len(line))
    bodies.append(gzip.compress(raw, 9))
print(f"chunk: {len(bodies[0])} bytes compressed, {len(raw)} decompressed, {len(raw)//len(line)} records")
open(f"/proc/{pid}/clear_refs", "w").write("5")  # reset VmHWM
mem("before")

def put(i):
    r = urllib.request.Request(f"{base}/v1/telemetry/{devs[i]}/c{i}", data=bodies[i], method="PUT", headers={
        "Authorization": "Bearer " + toks[i], "Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"})
    try:
        print(i, op.open(r).status)
    except urllib.error.HTTPError as e:
        print(i, e.code, e.read()[:120])

t0 = time.time()
threads = [threading.Thread(target=put, args=(i,)) for i in range(6)]
for t in threads: t.start()
for t in threads: t.join()
print("took %.2f s" % (time.time() - t0))
mem("after")
total = 0
for dev in devs:
    total += call("GET", f"/api/devices/{dev}/traffic")["total"]["transactions"]
print("transactions counted:", total)
