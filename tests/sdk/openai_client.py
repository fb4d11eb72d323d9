"""The official OpenAI Python SDK against Colloquy's OpenAI-compatible
endpoint. Run by tests/browser/test/openai-sdk.test.js with COLLOQUY_URL,
COLLOQUY_TOKEN and COLLOQUY_MODEL set, after it queued two scripted replies
on the fake upstream; prints what it received as JSON and exits non-zero
on any failure."""

import json
import os

import openai

client = openai.OpenAI(
    api_key=os.environ["COLLOQUY_TOKEN"],
    base_url=os.environ["COLLOQUY_URL"] + "/v1",
    max_retries=0,
)
model = os.environ["COLLOQUY_MODEL"]

models = [m.id for m in client.models.list()]
plain = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "What is six times seven?"}],
)
stream = client.chat.completions.create(
    model=model,
    messages=[{"role": "user", "content": "Stream please"}],
    stream=True,
)
streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
try:
    client.chat.completions.create(model="gpt-9", messages=[{"role": "user", "content": "hi"}])
    refused = None
except openai.BadRequestError as error:
    refused = error.status_code

print(
    json.dumps(
        {
            "models": models,
            "plain": plain.choices[0].message.content,
            "finish_reason": plain.choices[0].finish_reason,
            "streamed": streamed,
            "refused": refused,
        }
    )
)
