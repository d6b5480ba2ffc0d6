"""The swarm benchmark's peer: N libtorrent sessions (Debian's python3-libtorrent) on
loopback download one file at once from a BitTorrent v2 torrent, each with the CDN as its
web seed (BEP 19; its own address, SEED_URL with ?a=ltI, so the CDN's log tells them apart)
and every other session as a peer. Prints {"seconds": [...], "uploaded": [...]} in session order.

usage: swarm-libtorrent.py FILE PIECE_SIZE SEED_URL N WORKDIR TIMEOUT
"""
import json
import os
import sys
import time

import libtorrent as lt

path, piece_size, seed_url, count, work, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], float(sys.argv[6])

files = lt.file_storage()
lt.add_files(files, path)
maker = lt.create_torrent(files, piece_size, flags=lt.create_torrent.v2_only)
lt.set_piece_hashes(maker, os.path.dirname(path))
info = lt.torrent_info(lt.bencode(maker.generate()))

settings = {"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
            "enable_natpmp": False, "alert_mask": 0,
            # Its SSRF mitigation refuses web seeds with a query on private addresses: ours are.
            "ssrf_mitigation": False}
sessions, handles = [], []
for index in range(count):
    session = lt.session(settings)
    save = os.path.join(work, "lt-%d" % index)
    os.makedirs(save, exist_ok=True)
    handle = session.add_torrent({"ti": lt.torrent_info(info), "save_path": save})
    sessions.append(session)
    handles.append(handle)
started = time.time()
for index, handle in enumerate(handles):
    handle.add_url_seed("%s?a=lt%d" % (seed_url, index))
for index, handle in enumerate(handles):
    for other, session in enumerate(sessions):
        if other != index:
            handle.connect_peer(("127.0.0.1", session.listen_port()))

finished = [None] * count
while time.time() - started < timeout and None in finished:
    for index, handle in enumerate(handles):
        if finished[index] is None and handle.status().is_seeding:
            finished[index] = time.time() - started
    time.sleep(0.05)
print(json.dumps({"seconds": finished, "uploaded": [handle.status().all_time_upload for handle in handles]}))
