#!/usr/bin/python3
"""Isolation seen by paho-mqtt: two tenants, same client ID and topics, through the gateway.

Usage: /usr/bin/python3 test/paho/isolation.py PORT PROTOCOL(4|5) [TRANSPORT(tcp|websockets)]
Prints one JSON object: what each tenant's subscriber received. Bounded: gives up after a few seconds.
"""
import json
import sys
import threading
import time

import paho.mqtt.client as mqtt

port = int(sys.argv[1])
proto = mqtt.MQTTv5 if sys.argv[2] == "5" else mqtt.MQTTv311
transport = sys.argv[3] if len(sys.argv) > 3 else "tcp"
USERS = {"acme": ("alice@acme", "a"), "globex": ("alice@globex", "g")}


def client(tenant, client_id):
    c = mqtt.Client(client_id=client_id, protocol=proto, transport=transport)
    if transport == "websockets":
        c.ws_set_options(path="/mqtt")
    c.username_pw_set(*USERS[tenant])
    connected = threading.Event()
    c.on_connect = lambda *args: connected.set()
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    if not connected.wait(5):
        raise SystemExit(f"{tenant}: no CONNACK")
    return c


received = {"acme": [], "globex": []}
subscribers = {}
for tenant in USERS:
    sub = client(tenant, "paho-sub")  # the same client ID in both tenants
    subscribed = threading.Event()
    sub.on_subscribe = lambda *args, e=subscribed: e.set()
    sub.on_message = lambda _c, _u, msg, t=tenant: received[t].append([msg.topic, msg.payload.decode()])
    sub.subscribe("#", qos=1)
    if not subscribed.wait(5):
        raise SystemExit(f"{tenant}: no SUBACK")
    subscribers[tenant] = sub

for tenant in USERS:
    pub = client(tenant, "paho-pub")
    pub.publish("sensors/t1", f"from-{tenant}", qos=1).wait_for_publish()
    pub.loop_stop()
    pub.disconnect()

deadline = time.time() + 5
while time.time() < deadline and not all(received.values()):
    time.sleep(0.05)
time.sleep(0.3)  # anything that crossed would have arrived by now
for sub in subscribers.values():
    sub.loop_stop()
    sub.disconnect()
print(json.dumps(received))
