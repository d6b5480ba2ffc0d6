#!/usr/bin/env python3
"""Drives depot's OpenAI-compatible /v1 with the real `openai` Python client.

    openai_check.py BASE_URL CHAT_MODEL PLAIN_MODEL TOKEN TOOLS_MODEL

Lists and retrieves models, completes a chat plain and streaming (the same seed must give the
same text, the stream ends with a finish reason and usage), and checks that an unknown model,
a model without a usable chat template and `tools` for a model whose template defines no tool
calls are errors the client raises with OpenAI's shape. Tools (TOOLS_MODEL's template has the
`<tool_call>` form): a required call and a named one come back as `tool_calls` whose arguments
fit the function's schema, streamed the same; a conversation holding a call and its result is
answered. Structured output: `response_format` json_object, and the SDK's own `parse` with a
pydantic model (a strict json_schema), whose answer must validate. TOKEN is the agent's --token, sent as the API key. Prints one JSON line; exits 1
naming the first step that failed.
"""
import json, sys
from typing import Literal
import openai
from pydantic import BaseModel, Field

base, chat_model, plain_model, token, tools_model = sys.argv[1:6]
client = openai.OpenAI(base_url=base + "/v1", api_key=token, max_retries=0)
seen = {}

def step(name, condition, detail=""):
    if not condition:
        print(f"openai_check: step '{name}' failed: {detail}", file=sys.stderr)
        sys.exit(1)

ids = [m.id for m in client.models.list().data]
step("models", chat_model in ids and plain_model in ids, ids)
step("model", client.models.retrieve(chat_model).id == chat_model)

messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Ça va? 東京"}]
reply = client.chat.completions.create(model=chat_model, messages=messages, temperature=0.7, seed=5, max_tokens=40)
choice = reply.choices[0]
step("chat completion", choice.message.role == "assistant" and choice.finish_reason in ("stop", "length"), reply)
step("usage", reply.usage.completion_tokens > 0 and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens,
     reply.usage)
stream = client.chat.completions.create(model=chat_model, messages=messages, temperature=0.7, seed=5, max_tokens=40, stream=True,
                                        stream_options={"include_usage": True})
chunks = list(stream)
text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
step("streamed text is the answer", text == choice.message.content, [text, choice.message.content])
finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
step("stream ends with a finish reason", finishes == [choice.finish_reason], finishes)
step("stream usage", chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == reply.usage.completion_tokens, chunks[-1])
seen["tokens"] = reply.usage.completion_tokens
free = client.chat.completions.create(model=chat_model, messages=messages, temperature=0, max_tokens=60).choices[0].message.content
step("an answer to cut", len(free) > 12, free)
stop = free[8:11]
cut = client.chat.completions.create(model=chat_model, messages=messages, temperature=0, max_tokens=60, stop=stop).choices[0]
step("stop", cut.message.content == free[:free.index(stop)] and cut.finish_reason == "stop", (cut.message.content, free, stop))
penalised = client.chat.completions.create(model=chat_model, messages=messages, temperature=0, max_tokens=60,
                                           frequency_penalty=1.5, presence_penalty=1.5).choices[0].message.content
step("penalties change a greedy answer", penalised != free, (penalised, free))

text = client.completions.create(model=chat_model, prompt="Once upon", temperature=0.7, seed=3, max_tokens=12)
step("completion", text.choices[0].finish_reason in ("stop", "length") and 0 < text.usage.completion_tokens <= 12, text)
pieces = list(client.completions.create(model=chat_model, prompt="Once upon", temperature=0.7, seed=3, max_tokens=12, stream=True))
step("completion streaming", "".join(p.choices[0].text for p in pieces) == text.choices[0].text
     and pieces[-1].choices[0].finish_reason == text.choices[0].finish_reason, [p.choices[0].text for p in pieces])
default = client.completions.create(model=chat_model, prompt="Once upon", temperature=0.7, seed=3)
step("16 tokens by default, as OpenAI", default.usage.completion_tokens <= 16, default.usage)

for name, call, status in [
    ("unknown model", lambda: client.chat.completions.create(model="nope:x", messages=messages), 404),
    ("no usable template", lambda: client.chat.completions.create(model=plain_model, messages=messages), 400),
    ("tools for a template without tool calls", lambda: client.chat.completions.create(
        model=chat_model, messages=messages, tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}]), 400),
    ("a tool without a name", lambda: client.chat.completions.create(
        model=tools_model, messages=messages, tools=[{"type": "function", "function": {"parameters": {}}}]), 400),
    ("tool_choice naming no tool", lambda: client.chat.completions.create(
        model=tools_model, messages=messages, tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}],
        tool_choice={"type": "function", "function": {"name": "g"}}), 400),
    ("an unknown response_format", lambda: client.chat.completions.create(model=chat_model, messages=messages,
                                                                         response_format={"type": "yaml"}), 400),
    ("frequency_penalty out of range", lambda: client.chat.completions.create(model=chat_model, messages=messages,
                                                                              frequency_penalty=3), 400),
    ("echo", lambda: client.completions.create(model=chat_model, prompt="Once upon", echo=True), 400),
    ("several prompts", lambda: client.completions.create(model=chat_model, prompt=["a", "b"]), 400),
]:
    try:
        call()
        step(name, False, "it answered")
    except openai.APIStatusError as error:
        body = error.body if isinstance(error.body, dict) else {}
        step(name, error.status_code == status and isinstance(body.get("message"), str), (error.status_code, error.body))
        seen[name] = body.get("message")

try:
    openai.OpenAI(base_url=base + "/v1", api_key="wrong", max_retries=0).models.list()
    step("a wrong key is refused", False, "it answered")
except openai.AuthenticationError:
    pass

class Pet(BaseModel):
    name: str = Field(max_length=12)
    kind: Literal["cat", "dog", "fish"]
    age: int
    vaccinated: bool

for seed in range(3):
    parsed = client.chat.completions.parse(model=chat_model, messages=[{"role": "user", "content": "A pet?"}], response_format=Pet, seed=seed,
                                           temperature=1.0, max_tokens=400)
    step("parse gives the pydantic model", isinstance(parsed.choices[0].message.parsed, Pet), parsed)
    seen.setdefault("pets", []).append(parsed.choices[0].message.parsed.model_dump())
as_json = client.chat.completions.create(model=chat_model, messages=[{"role": "user", "content": "A pet?"}], response_format={"type": "json_object"},
                                         seed=4, temperature=0.8, max_tokens=400)
step("json_object starts an object or array", as_json.choices[0].message.content[:1] in "{[", as_json.choices[0].message.content)
if as_json.choices[0].finish_reason == "stop":
    json.loads(as_json.choices[0].message.content)
weather = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}, "days": {"type": "integer"}},
                          "required": ["city", "days"]}}}
clock = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {
    "zone": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["zone"]}}}
ask = [{"role": "user", "content": "Weather in Paris for 3 days?"}]
def called(reply):
    message = reply.choices[0].message
    step("a call", reply.choices[0].finish_reason == "tool_calls" and message.tool_calls and len(message.tool_calls) == 1, reply)
    return message.tool_calls[0]
own = called(client.chat.completions.create(model=tools_model, messages=ask, tools=[weather, clock], max_tokens=200))
step("the model's own call (tool_choice auto)", own.function.name == "get_weather" and json.loads(own.function.arguments) == {"city": "Paris", "days": 3}, own)
call = called(client.chat.completions.create(model=tools_model, messages=ask, tools=[weather, clock], tool_choice="required",
                                             seed=7, temperature=0.9, max_tokens=200))
arguments = json.loads(call.function.arguments)
step("the call fits its function", call.type == "function" and call.id and (
    call.function.name == "get_weather" and isinstance(arguments.get("city"), str) and isinstance(arguments.get("days"), int)
    or call.function.name == "get_time" and arguments.get("zone") in ("UTC", "CET")), call)
named = called(client.chat.completions.create(model=tools_model, messages=ask, tools=[weather, clock],
                                              tool_choice={"type": "function", "function": {"name": "get_time"}}, seed=7, max_tokens=200))
step("the named function", named.function.name == "get_time" and json.loads(named.function.arguments)["zone"] in ("UTC", "CET"), named)
chunks = list(client.chat.completions.create(model=tools_model, messages=ask, tools=[weather, clock], tool_choice="required",
                                             seed=7, temperature=0.9, max_tokens=200, stream=True))
streamed = [c for chunk in chunks if chunk.choices for c in (chunk.choices[0].delta.tool_calls or [])]
step("streamed call", [(c.index, c.function.name, c.function.arguments) for c in streamed] == [(0, call.function.name, call.function.arguments)]
     and chunks[-1].choices[0].finish_reason == "tool_calls", chunks)
history = ask + [{"role": "assistant", "content": None, "tool_calls": [{"id": call.id, "type": "function", "function": {
    "name": call.function.name, "arguments": call.function.arguments}}]}, {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 °C"}]
after = client.chat.completions.create(model=tools_model, messages=history, tools=[weather, clock], seed=7, max_tokens=30)
step("a conversation with a call and its result", after.choices[0].finish_reason in ("stop", "length", "tool_calls"), after)
seen["call"] = [call.function.name, arguments]
print(json.dumps(seen))
