#!/usr/bin/env python3
"""Drives depot's embeddings with the real `ollama` and `openai` Python clients.

    embed_check.py BASE_URL EMBED_MODEL CHAT_MODEL

EMBED_MODEL's GGUF names a pooling type; CHAT_MODEL's does not. Checks /api/embed (batch,
unit length, the same text the same vector, `dimensions`), the older /api/embeddings, the
OpenAI client's /v1/embeddings (its default base64 encoding and floats, the same vectors),
and that a chat model is a 400. Prints one JSON line; exits 1 naming the first step that failed.
"""
import json, math, sys
import ollama, openai

base, embed_model, chat_model = sys.argv[1:4]
client = ollama.Client(host=base)
seen = {}

def step(name, condition, detail=""):
    if not condition:
        print(f"embed_check: step '{name}' failed: {detail}", file=sys.stderr)
        sys.exit(1)

def norm(vector):
    return math.sqrt(sum(x * x for x in vector))

def close(a, b, tolerance=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= tolerance for x, y in zip(a, b))

step("show lists the embedding capability", "embedding" in (client.show(embed_model).capabilities or []), client.show(embed_model).capabilities)
texts = ["the cat sat", "Größe 東京", "the cat sat"]
batch = client.embed(model=embed_model, input=texts).embeddings
step("embed batch", len(batch) == 3 and len(batch[0]) > 0, len(batch))
step("unit length", all(abs(norm(v) - 1) < 1e-4 for v in batch), [norm(v) for v in batch])
step("same text, same vector", close(batch[0], batch[2]) and not close(batch[0], batch[1]))
single = client.embed(model=embed_model, input="the cat sat").embeddings
step("one input", len(single) == 1 and close(single[0], batch[0]))
short = client.embed(model=embed_model, input=texts, dimensions=8).embeddings
step("dimensions", all(len(v) == 8 and abs(norm(v) - 1) < 1e-4 for v in short), [len(v) for v in short])
legacy = client.embeddings(model=embed_model, prompt="the cat sat").embedding
step("legacy embeddings, not normalised", close([x / norm(legacy) for x in legacy], batch[0], 1e-4), norm(legacy))
seen["size"] = len(batch[0])

try:
    client.embed(model=chat_model, input="hello")
    step("a chat model is refused", False, "it answered")
except ollama.ResponseError as error:
    step("a chat model is a 400", error.status_code == 400 and "embeddings" in error.error, (error.status_code, error.error))

oa = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0)
encoded = oa.embeddings.create(model=embed_model, input=texts[:2])
step("openai (base64 by default)", [d.index for d in encoded.data] == [0, 1] and close(encoded.data[0].embedding, batch[0])
     and close(encoded.data[1].embedding, batch[1]), encoded.data[0].embedding[:4])
floats = oa.embeddings.create(model=embed_model, input="the cat sat", encoding_format="float", dimensions=8)
step("openai floats and dimensions", close(floats.data[0].embedding, short[0]), floats.data[0].embedding)
try:
    oa.embeddings.create(model=chat_model, input="hello")
    step("openai: a chat model is refused", False, "it answered")
except openai.BadRequestError as error:
    step("openai: a chat model is a 400", "embeddings" in str(error.body), error.body)

print(json.dumps(seen))
