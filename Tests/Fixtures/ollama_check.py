#!/usr/bin/env python3
"""Drives depot's Ollama-compatible API with the real `ollama` Python client.

    ollama_check.py BASE_URL INSTALLED_MODEL CATALOG_MODEL

Lists, pulls (streaming), shows, generates (plain and streaming), checks ps, unloads with
keep_alive=0, copies and deletes, and checks that an unknown model is a 404. Prints one JSON
line of what it saw; exits 1 naming the first step that failed.
"""
import json, sys
import ollama

base, installed, catalog_model = sys.argv[1:4]
client = ollama.Client(host=base)
seen = {}

def step(name, condition, detail=""):
    if not condition:
        print(f"ollama_check: step '{name}' failed: {detail}", file=sys.stderr)
        sys.exit(1)

names = [m.model for m in client.list().models]
step("list", installed in names and catalog_model not in names, names)

progress = list(client.pull(catalog_model, stream=True))
statuses = [p.status for p in progress]
step("pull ends in success", statuses[-1] == "success", statuses)
step("pull reports bytes", any(p.total and p.completed is not None for p in progress), statuses)
seen["pull"] = statuses[:3] + statuses[-3:]
step("pulled model listed", catalog_model in [m.model for m in client.list().models])

shown = client.show(installed)
step("show details", shown.details.family == "llama" and shown.details.format == "gguf", shown.details)
step("show model_info", shown.modelinfo.get("general.architecture") == "llama", list(shown.modelinfo)[:10])

options = {"temperature": 0, "num_predict": 5, "seed": 1}
reply = client.generate(model=installed, prompt="hello", options=options)
step("generate", reply.done and 0 < reply.eval_count <= 5, reply)
chunks = list(client.generate(model=installed, prompt="hello", options=options, stream=True))
step("generate streaming", chunks[-1].done and "".join(c.response for c in chunks) == reply.response,
     [c.response for c in chunks])
seen["tokens"] = reply.eval_count

running = [m.model for m in client.ps().models]
step("ps shows the loaded model", running == [installed], running)
unloaded = client.generate(model=installed, prompt="", keep_alive=0)
step("keep_alive 0 unloads", unloaded.done_reason == "unload", unloaded)
step("ps empty after unload", client.ps().models == [], client.ps())

client.copy(installed, "copied:x")
step("copy", "copied:x" in [m.model for m in client.list().models])
client.delete("copied:x")
step("delete", "copied:x" not in [m.model for m in client.list().models])
try:
    client.delete("missing:x")
    step("delete unknown is 404", False, "no error raised")
except ollama.ResponseError as error:
    step("delete unknown is 404", error.status_code == 404, error)
try:
    client.generate(model="missing:x", prompt="hi")
    step("generate unknown is 404", False, "no error raised")
except ollama.ResponseError as error:
    step("generate unknown is 404", error.status_code == 404 and "not found" in str(error), error)

print(json.dumps(seen))
