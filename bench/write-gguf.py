"""Writes a GGUF file of random weights of about SIZE_MIB MiB (for download and swarm
benchmarks: the store checks that a file is GGUF, not what its weights are).

usage: write-gguf.py PATH SIZE_MIB
"""
import os
import struct
import sys

path, mib = sys.argv[1], int(sys.argv[2])


def string(text):
    data = text.encode()
    return struct.pack('<Q', len(data)) + data


header = b'GGUF' + struct.pack('<IQQ', 3, 1, 1)
header += string('general.architecture') + struct.pack('<I', 8) + string('llama')
header += string('w') + struct.pack('<I', 2) + struct.pack('<QQ', 1024, mib * 1024) + struct.pack('<I', 24) + struct.pack('<Q', 0)
header += b'\0' * ((32 - len(header) % 32) % 32)
with open(path, 'wb') as out:
    out.write(header)
    left = mib << 20
    while left > 0:
        chunk = min(left, 64 << 20)
        out.write(os.urandom(chunk))
        left -= chunk
