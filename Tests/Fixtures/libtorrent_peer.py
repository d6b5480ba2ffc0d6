"""libtorrent (Debian's python3-libtorrent) as a third-party BitTorrent v2 peer for tests.

  root FILE PIECE_SIZE               print {"piecesRoot", "pieceLayer"} of a v2 torrent libtorrent makes
  fetch TORRENT SAVE TIMEOUT [URL]   download with the torrent's web seeds; once a piece has failed its
                                     hash (or after 10 s), add URL as another web seed; print the outcome
"""
import json
import os
import sys
import time

import libtorrent as lt


def root(path, piece_size):
    files = lt.file_storage()
    lt.add_files(files, path)
    maker = lt.create_torrent(files, piece_size, flags=lt.create_torrent.v2_only)
    lt.set_piece_hashes(maker, os.path.dirname(path))
    encoded = maker.generate()
    node = list(encoded[b"info"][b"file tree"].values())[0][b""]
    layer = encoded.get(b"piece layers", {}).get(node[b"pieces root"], b"")
    print(json.dumps({"piecesRoot": node[b"pieces root"].hex(),
                      "pieceLayer": [layer[i:i + 32].hex() for i in range(0, len(layer), 32)]}))


def fetch(torrent, save, timeout, later_seed):
    session = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                          "enable_upnp": False, "enable_natpmp": False,
                          "alert_mask": lt.alert.category_t.error_notification | lt.alert.category_t.status_notification})
    handle = session.add_torrent({"ti": lt.torrent_info(torrent), "save_path": save})
    started = time.time()
    hash_failures = 0
    while time.time() - started < timeout:
        for alert in session.pop_alerts():
            if isinstance(alert, lt.hash_failed_alert):
                hash_failures += 1
        if later_seed and (hash_failures > 0 or time.time() - started > 10):
            handle.add_url_seed(later_seed)
            later_seed = None
        if handle.status().is_seeding:
            break
        time.sleep(0.1)
    status = handle.status()
    print(json.dumps({"complete": bool(status.is_seeding), "done": status.total_wanted_done,
                      "hashFailures": hash_failures, "v2": lt.torrent_info(torrent).info_hashes().has_v2()}))


if __name__ == "__main__":
    if sys.argv[1] == "root":
        root(sys.argv[2], int(sys.argv[3]))
    else:
        fetch(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5] if len(sys.argv) > 5 else None)
