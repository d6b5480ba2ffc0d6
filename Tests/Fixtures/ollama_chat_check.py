#!/usr/bin/env python3
"""Drives depot's /api/chat with the real `ollama` Python client.

    ollama_chat_check.py BASE_URL CHAT_MODEL PLAIN_MODEL TOOLS_MODEL

CHAT_MODEL carries a chat template llama.cpp applies (ChatML); PLAIN_MODEL one it does not.
Chats plain and streaming (the same seed must give the same text), loads with no messages,
holds answers to `format` ("json", and a pydantic model's JSON schema: the answer must
validate), and checks that a model without a usable template and a schema the grammar cannot
express are clear 400s. Tools: TOOLS_MODEL's template has the `<tool_call>` form, so /api/show
lists "tools", a chat with Python functions as tools gets the call its (scripted) model answers
as `tool_calls`, streamed or not, and one holding a call and its result is answered; CHAT_MODEL's has not, so tools there are a 400. Prints one
JSON line of what it saw; exits 1 naming the first step that failed.
"""
import json, sys
from typing import Literal
import ollama
from pydantic import BaseModel, Field

base, chat_model, plain_model, tools_model = sys.argv[1:5]
client = ollama.Client(host=base)
seen = {}

def step(name, condition, detail=""):
    if not condition:
        print(f"ollama_chat_check: step '{name}' failed: {detail}", file=sys.stderr)
        sys.exit(1)

messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Wie geht's? 🙂"}]
options = {"temperature": 0.7, "seed": 5, "num_predict": 40}
reply = client.chat(model=chat_model, messages=messages, options=options)
step("chat", reply.done and reply.message.role == "assistant" and reply.eval_count and reply.eval_count > 0, reply)
step("chat counts the templated prompt", reply.prompt_eval_count and reply.prompt_eval_count > 30, reply.prompt_eval_count)
step("chat has a done_reason", reply.done_reason in ("stop", "length"), reply.done_reason)
chunks = list(client.chat(model=chat_model, messages=messages, options=options, stream=True))
streamed = "".join(c.message.content for c in chunks)
step("chat streaming is the same answer", chunks[-1].done and streamed == reply.message.content, [streamed, reply.message.content])
step("streamed chunks are the assistant's", all(c.message.role == "assistant" for c in chunks))
seen["tokens"] = reply.eval_count

plain_options = {"temperature": 0, "num_predict": 5}
templated = client.generate(model=chat_model, prompt="hi", system="Be brief.", options=plain_options)
raw = client.generate(model=chat_model, prompt="hi", raw=True, options=plain_options)
step("generate applies the template (system too)", templated.prompt_eval_count > raw.prompt_eval_count + 10,
     (templated.prompt_eval_count, raw.prompt_eval_count))
step("raw skips it", raw.prompt_eval_count <= 8, raw.prompt_eval_count)
as_chat = client.chat(model=chat_model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
                      options=plain_options)
step("generate with a template is the chat", templated.response == as_chat.message.content
     and templated.prompt_eval_count == as_chat.prompt_eval_count, (templated.response, as_chat.message.content))
try:
    client.generate(model=chat_model, prompt="def f(", suffix="    return x")
    step("suffix without FIM tokens is refused", False, "it answered")
except ollama.ResponseError as error:
    step("suffix without FIM tokens is a 400 saying so", error.status_code == 400 and "fill-in-the-middle" in error.error,
         (error.status_code, error.error))
for field, value in [("images", ["aGk="]), ("template", "{{ .Prompt }}"), ("context", [1, 2, 3])]:
    try:
        client.generate(model=chat_model, prompt="hi", **{field: value})
        step(f"{field} is refused until it is supported", False, "it answered")
    except ollama.ResponseError as error:
        step(f"{field} is a 400", error.status_code == 400 and field in error.error, (error.status_code, error.error))

# A stop string ends the answer before it, streamed or not: it is cut from a longer answer.
free = client.generate(model=chat_model, prompt="hi", options={"temperature": 0, "num_predict": 60}).response
step("an answer to cut", len(free) > 12, free)
stop = free[8:11]
cut = client.generate(model=chat_model, prompt="hi", options={"temperature": 0, "num_predict": 60, "stop": [stop]})
step("stop ends the answer", cut.response == free[:free.index(stop)] and cut.done_reason == "stop", (cut.response, free, stop))
streamed = "".join(c.response for c in client.generate(model=chat_model, prompt="hi", stream=True,
                                                       options={"temperature": 0, "num_predict": 60, "stop": [stop]}))
step("stop while streaming", streamed == cut.response, (streamed, cut.response))

# Repetition penalties change a greedy answer (the tiny model repeats itself); bad ones are 400s.
greedy = {"temperature": 0, "num_predict": 60}
plain_answer = client.generate(model=chat_model, prompt="hi", options=greedy).response
penalised = client.generate(model=chat_model, prompt="hi", options={**greedy, "repeat_penalty": 1.8, "repeat_last_n": 32}).response
step("repeat_penalty changes the answer", penalised != plain_answer, (penalised, plain_answer))
for bad in [{"repeat_penalty": 0}, {"frequency_penalty": 3}, {"repeat_last_n": -2}]:
    try:
        client.generate(model=chat_model, prompt="hi", options={**greedy, **bad})
        step(f"{bad} is refused", False, "it answered")
    except ollama.ResponseError as error:
        step(f"{bad} is a 400 naming it", error.status_code == 400 and list(bad)[0] in error.error, (error.status_code, error.error))

loaded = client.chat(model=chat_model, messages=[])
step("no messages loads the model", loaded.done_reason == "load", loaded)

try:
    client.chat(model=plain_model, messages=messages)
    step("a model without a usable template is refused", False, "it answered")
except ollama.ResponseError as error:
    step("a model without a usable template is a 400 naming it",
         error.status_code == 400 and plain_model in error.error and "chat template" in error.error, (error.status_code, error.error))
    seen["refused"] = error.error

# Structured output: a random model held to a schema by llama.cpp's grammar sampler still
# answers with JSON that validates, whatever the seed; streamed, the same text.
class Pet(BaseModel):
    name: str = Field(max_length=12)
    kind: Literal["cat", "dog", "fish"]
    age: int
    vaccinated: bool
    tags: list[Literal["small", "loud", "old"]] = Field(default=[], max_length=3)

# The tiny model's context is 256 tokens: a short question leaves room for the answer.
question = [{"role": "user", "content": "A pet?"}]
for seed in range(4):
    structured = client.chat(model=chat_model, messages=question, format=Pet.model_json_schema(),
                             options={"temperature": 1.0, "seed": seed, "num_predict": 400})
    step("a schema's answer ends", structured.done_reason == "stop", structured)
    pet = Pet.model_validate_json(structured.message.content)
    seen.setdefault("pets", []).append(pet.model_dump())
streamed = "".join(c.message.content for c in client.chat(model=chat_model, messages=question, format=Pet.model_json_schema(),
                                                          options={"temperature": 1.0, "seed": 3, "num_predict": 400}, stream=True))
step("a schema's answer streamed is the same", streamed == structured.message.content, (streamed, structured.message.content))
generated = client.generate(model=chat_model, prompt="A pet, as JSON:", format=Pet.model_json_schema(),
                            options={"temperature": 0.8, "seed": 9, "num_predict": 400})
Pet.model_validate_json(generated.response)
anything = client.chat(model=chat_model, messages=question, format="json", options={"temperature": 0.8, "seed": 2, "num_predict": 400})
step("format json starts a JSON object or array", anything.message.content[:1] in "{[", anything.message.content)
if anything.done_reason == "stop":
    json.loads(anything.message.content)
# (The client itself refuses a format that is neither "json" nor a schema; the agent's own
# test sends one.)
for bad, named in [({"type": "object", "patternProperties": {"^a": {"type": "string"}}}, "patternProperties"),
                   ({"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}, "#/$defs/missing")]:
    try:
        client.chat(model=chat_model, messages=messages, format=bad)
        step(f"format {named} is refused", False, "it answered")
    except ollama.ResponseError as error:
        step(f"format {named} is a 400 naming it", error.status_code == 400 and named in error.error, (error.status_code, error.error))

def get_weather(city: str, days: int) -> str:
    """The weather in a city.

    Args:
        city: The city
        days: How many days ahead
    """
    return "Sunny"

step("tools capability", "tools" in (client.show(tools_model).capabilities or []) and "tools" not in (client.show(chat_model).capabilities or []))
ask = [{"role": "user", "content": "Weather in Paris?"}]
answered = client.chat(model=tools_model, messages=ask, tools=[get_weather], options={"seed": 1, "num_predict": 30})
calls = answered.message.tool_calls or []
step("the answer's call comes back as tool_calls", len(calls) == 1 and calls[0].function.name == "get_weather"
     and dict(calls[0].function.arguments) == {"city": "Paris", "days": 3} and not answered.message.content, answered)
streamed = [call for chunk in client.chat(model=tools_model, messages=ask, tools=[get_weather], stream=True) for call in (chunk.message.tool_calls or [])]
step("streamed, the call comes once", [(c.function.name, dict(c.function.arguments)) for c in streamed] == [("get_weather", {"city": "Paris", "days": 3})],
     streamed)
history = ask + [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 1}}}]},
                 {"role": "tool", "content": "Sunny, 21 °C", "tool_name": "get_weather"}]
after = client.chat(model=tools_model, messages=history, tools=[get_weather], options={"seed": 1, "num_predict": 30})
step("a chat holding a call and its result", after.done, after)
try:
    client.chat(model=chat_model, messages=ask, tools=[get_weather])
    step("tools need a template with tool calls", False, "it answered")
except ollama.ResponseError as error:
    step("tools need a template with tool calls", error.status_code == 400 and chat_model in error.error and "tool" in error.error,
         (error.status_code, error.error))

print(json.dumps(seen))
