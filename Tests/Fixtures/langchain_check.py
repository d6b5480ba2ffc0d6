#!/usr/bin/env python3
"""Drives depot's Ollama API with LangChain's own Ollama integration (`langchain-ollama`),
as an application built on LangChain would, unchanged.

    langchain_check.py BASE_URL CHAT_MODEL TOOLS_MODEL EMBED_MODEL

ChatOllama chats (with a system message, the same seed giving the same text streamed or not),
gives a pydantic model through `with_structured_output` (its JSON schema held by the grammar:
the answer must validate), and binds tools on TOOLS_MODEL (a template with tool calls, a
scripted model answering a call of get_weather, which must come back as a tool call);
OllamaEmbeddings embeds documents and a query. Prints one JSON line; exits 1 naming the first
step that failed.
"""
import json, sys
from typing import Literal
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langchain_ollama import ChatOllama, OllamaEmbeddings
from pydantic import BaseModel, Field

base, chat_model, tools_model, embed_model = sys.argv[1:5]
seen = {}

def step(name, condition, detail=""):
    if not condition:
        print(f"langchain_check: step '{name}' failed: {detail}", file=sys.stderr)
        sys.exit(1)

chat = ChatOllama(model=chat_model, base_url=base, temperature=0.7, seed=5, num_predict=30)
messages = [SystemMessage("Answer briefly."), HumanMessage("Ça va? 東京")]
reply = chat.invoke(messages)
step("invoke", isinstance(reply, AIMessage) and isinstance(reply.content, str) and reply.response_metadata.get("done"), reply)
step("usage", reply.usage_metadata and reply.usage_metadata["output_tokens"] > 0, reply.usage_metadata)
streamed = "".join(chunk.content for chunk in chat.stream(messages))
step("stream is the same text", streamed == reply.content, (streamed, reply.content))
seen["reply"] = reply.content

class Pet(BaseModel):
    name: str = Field(max_length=12)
    kind: Literal["cat", "dog", "fish"]
    age: int

structured = ChatOllama(model=chat_model, base_url=base, temperature=1.0, seed=2, num_predict=400).with_structured_output(Pet, method="json_schema")
pet = structured.invoke("A pet?")
step("with_structured_output", isinstance(pet, Pet), pet)
seen["pet"] = pet.model_dump()

@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return "Sunny"

with_tools = ChatOllama(model=tools_model, base_url=base, seed=1, num_predict=30).bind_tools([get_weather])
answered = with_tools.invoke("Weather in Paris?")
step("bind_tools: the model's call as a tool call", [(c["name"], c["args"]) for c in answered.tool_calls] == [("get_weather", {"city": "Paris", "days": 3})],
     answered)

embeddings = OllamaEmbeddings(model=embed_model, base_url=base)
vectors = embeddings.embed_documents(["the cat sat", "Größe"])
query = embeddings.embed_query("the cat sat")
step("embed_documents", len(vectors) == 2 and len(vectors[0]) == len(vectors[1]) > 0, [len(v) for v in vectors])
step("embed_query is a document's vector", max(abs(a - b) for a, b in zip(query, vectors[0])) < 1e-5)
seen["dimensions"] = len(query)
print(json.dumps(seen))
