#!/usr/bin/env python3
"""An HTTP file server that misbehaves on purpose, for Depot's transfer tests.

    fault_server.py ROOT LOG   prints its port on stdout, then serves ROOT.

The first path segment picks the behaviour, the rest names a file under ROOT:
  /ok/F          ranges, ETag, Last-Modified, like a good CDN
  /drop/F        the first 3 bodies stop halfway and the connection is cut
  /norange/F     says Accept-Ranges but answers every GET with the whole file (200)
  /etagflip/F    after 2 GETs the file becomes F.v2 (new ETag), as if re-uploaded
  /5xx/F         the first 4 requests get 503
  /stall/F       the first body sends 64 KiB and then hangs for 60 s
  /lielength/F   the first 2 bodies declare more bytes than they send, then close
  /corrupt/F     byte 1000 of every body that covers it is flipped
  /corruptonce/F the middle byte is flipped in the first body that covers it only
  /corruptall/F  the first byte of every body is flipped
  /redirect/F    302 to http://localhost:PORT/ok/F (another host name)
  /samehost/F    302 to /ok/F on this host
  /slow/F        sends at about 4 MB/s
  /novalidators/F       no ETag, no Last-Modified (ranges still served)
  /novalidatorsdrop/F   the same, and the first 2 bodies are cut halfway
  /expiring/F    302 to http://localhost:PORT/signed/F?exp=K, a fresh K each time; a signed
                 address serves 2 GETs and then answers 403, as an expired CDN URL does
  /missing/F     404
  /claim1g/F     HEAD claims 1 GiB (ranges, ETag); every GET answers 500
  /claimhuge/F   HEAD claims 1 PiB, more than any disk; every GET answers 500
  /auth/F        401 unless "Authorization: Bearer sesame"
  /hf/OWNER/REPO/resolve/REV/F   like the Hugging Face Hub for a gated repo: 401 without the
                 token, else 302 to http://localhost:PORT/ok/F with X-Linked-Etag (the SHA-256)
                 and X-Linked-Size; a public repo when ROOT/hub/OWNER/REPO/F exists (302 to it,
                 no token needed)
  /hf/api/models/OWNER/REPO[/revision/REV]   the Hub's model info for ROOT/hub/OWNER/REPO:
                 `siblings` with each file's name, size and (?blobs=true) LFS SHA-256
Every request is logged to LOG as one JSON line: method, path, host, range, whether an
Authorization header came, status and body bytes sent.
"""
import hashlib, json, os, re, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, LOG = sys.argv[1], sys.argv[2]
counts, lock = {}, threading.Lock()

def count(key):
    with lock:
        counts[key] = counts.get(key, 0) + 1
        return counts[key]

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, status, sent):
        entry = {"method": self.command, "path": self.path, "host": self.headers.get("Host", ""),
                 "range": self.headers.get("Range"), "authorization": "Authorization" in self.headers,
                 "status": status, "sent": sent}
        with lock, open(LOG, "a") as log:
            log.write(json.dumps(entry) + "\n")

    def do_HEAD(self):
        self.serve(head=True)

    def do_GET(self):
        self.serve(head=False)

    def model_info(self, segments, head):
        """GET /api/models/OWNER/REPO[/revision/REV]: the repository's files."""
        directory = os.path.join(ROOT, "hub", *segments[:2])
        if len(segments) not in (2, 4) or ".." in segments or not os.path.isdir(directory):
            return self.fail(404)
        siblings = []
        for name in sorted(os.listdir(directory)):
            data = open(os.path.join(directory, name), "rb").read()
            sibling = {"rfilename": name, "size": len(data)}
            if name.endswith(".gguf"):
                sibling["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(sibling)
        body = json.dumps({"id": "/".join(segments[:2]), "sha": "0" * 40, "siblings": siblings}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)
        self.record(200, 0 if head else len(body))

    def serve(self, head):
        parts = urllib.parse.urlsplit(self.path).path.lstrip("/").split("/", 1)
        if len(parts) != 2:
            return self.fail(404)
        fault, name = parts
        if fault == "hf" and name.startswith("api/models/"):
            return self.model_info(name[len("api/models/"):].split("/"), head)
        if fault == "hf":
            segments = name.split("/")
            public = os.path.join("hub", segments[0], segments[1], segments[-1]) if len(segments) >= 5 else ""
            name = public if public and os.path.isfile(os.path.join(ROOT, public)) else segments[-1]
        path = os.path.join(ROOT, name)
        gets = count((fault, name, "GET")) if not head else counts.get((fault, name, "GET"), 0)
        requests = count((fault, name))
        if fault == "missing" or not os.path.isfile(path):
            return self.fail(404)
        if fault in ("claim1g", "claimhuge"):
            if not head:
                return self.fail(500)
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 30 if fault == "claim1g" else 1 << 50))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", '"claimed"')
            self.end_headers()
            return self.record(200, 0)
        if fault == "auth" and self.headers.get("Authorization") != "Bearer sesame":
            return self.fail(401)
        if fault == "5xx" and requests <= 4:
            return self.fail(503)
        if fault == "expiring":
            token = count(("token", name))
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/signed/{name}?exp={token}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self.record(302, 0)
        if fault == "signed":
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            token = int(query.get("exp", ["0"])[0])
            uses = count(("signed", name, token)) if not head else 0
            if token < 1 or uses > 2:
                return self.fail(403)
        if fault == "hf":
            if not name.startswith("hub/") and self.headers.get("Authorization") != "Bearer sesame":
                return self.fail(401)
            data = open(path, "rb").read()
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/ok/{name}")
            self.send_header("X-Linked-Etag", '"%s"' % hashlib.sha256(data).hexdigest())
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self.record(302, 0)
        if fault in ("redirect", "samehost"):
            port = self.server.server_address[1]
            target = f"http://localhost:{port}/ok/{name}" if fault == "redirect" else f"/ok/{name}"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return self.record(302, 0)
        version = 1
        if fault == "etagflip" and gets > 2 - head:  # a HEAD after two GETs already sees the new upload
            path, version = path + ".v2", 2
        data = open(path, "rb").read()
        etag = '"%s"' % hashlib.md5(data).hexdigest()
        start, end, status = 0, len(data), 200
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if wanted and fault != "norange" and (if_range is None or if_range == etag):
            match = re.match(r"bytes=(\d+)-(\d*)", wanted)
            start = int(match.group(1))
            end = min(len(data), int(match.group(2)) + 1) if match.group(2) else len(data)
            status = 206
        body = bytearray(data[start:end])
        if fault == "corrupt" and start <= 1000 < end:
            body[1000 - start] ^= 0xFF
        if fault == "corruptall" and body:
            body[0] ^= 0xFF
        middle = len(data) // 2
        if fault == "corruptonce" and not head and start <= middle < end and count(("corrupted", name)) == 1:
            body[middle - start] ^= 0xFF
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        if not fault.startswith("novalidators"):
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", "Mon, 0%d Nov 2026 10:00:00 GMT" % version)
        declared = len(body)
        if fault == "lielength" and not head and gets <= 2:
            declared = len(body) + 4096
        self.send_header("Content-Length", str(declared))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end - 1, len(data)))
        self.end_headers()
        if head:
            return self.record(status, 0)
        sent = 0
        try:
            if (fault == "drop" and gets <= 3) or (fault == "novalidatorsdrop" and gets <= 2):
                half = len(body) // 2
                self.wfile.write(body[:half])
                sent = half
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
            elif fault == "stall" and gets == 1:
                self.wfile.write(body[:65536])
                sent = min(65536, len(body))
                self.wfile.flush()
                time.sleep(60)
            elif fault == "lielength" and gets <= 2:
                self.wfile.write(body)
                sent = len(body)
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
            elif fault == "slow":
                view = memoryview(body)
                for offset in range(0, len(body), 1 << 16):
                    self.wfile.write(view[offset:offset + (1 << 16)])
                    sent += len(view[offset:offset + (1 << 16)])
                    time.sleep(0.016)
            else:
                view = memoryview(body)
                for offset in range(0, len(body), 1 << 20):
                    self.wfile.write(view[offset:offset + (1 << 20)])
                    sent += len(view[offset:offset + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.record(status, sent)

    def fail(self, status):
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.record(status, 0)

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
