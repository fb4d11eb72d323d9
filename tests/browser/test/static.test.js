// @ts-check
/**
 * @file The UI is served by the binary itself: right content types,
 * revalidation with ETags, security headers on pages, and no shadowing of
 * the API's JSON 404s.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { startFakeOpenAI } from "../lib/fake-openai.js";
import { startServer } from "../lib/server.js";

/** @type {Awaited<ReturnType<typeof startFakeOpenAI>>} */
let upstream;
/** @type {Awaited<ReturnType<typeof startServer>>} */
let server;

before(async () => {
  upstream = await startFakeOpenAI();
  server = await startServer({ upstreamUrl: upstream.url });
});
after(async () => {
  await server?.destroy();
  await upstream?.close();
});

test("pages, scripts and styles are served with their content types", async () => {
  for (const [path, type] of [
    ["/", "text/html; charset=utf-8"],
    ["/index.html", "text/html; charset=utf-8"],
    ["/v2/chat/test", "text/html; charset=utf-8"],
    ["/app.js", "javascript"],
    ["/colloquy-client.js", "javascript"],
    ["/ai-sdk-transport.js", "javascript"],
    ["/voice.js", "javascript"],
    ["/audio-capture-worklet.js", "javascript"],
    ["/style.css", "text/css; charset=utf-8"],
    ["/favicon.svg", "image/svg+xml"],
  ]) {
    const response = await fetch(server.url + path);
    assert.equal(response.status, 200, path);
    assert.ok(response.headers.get("content-type")?.includes(type), `${path}: ${response.headers.get("content-type")}`);
    assert.equal(response.headers.get("cache-control"), "no-cache", path);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff", path);
  }
  const index = await fetch(server.url + "/");
  assert.match(await index.text(), /<title>Colloquy<\/title>/);
  assert.match(index.headers.get("content-security-policy") ?? "", /script-src 'self'/);
});

test("an unchanged asset revalidates to 304 with its ETag", async () => {
  const first = await fetch(server.url + "/app.js");
  const etag = first.headers.get("etag");
  assert.match(etag ?? "", /^"[0-9a-f]{32}"$/);
  const again = await fetch(server.url + "/app.js", { headers: { "if-none-match": etag ?? "" } });
  assert.equal(again.status, 304);
  assert.equal(again.headers.get("etag"), etag);
  const changed = await fetch(server.url + "/app.js", { headers: { "if-none-match": '"stale"' } });
  assert.equal(changed.status, 200);
});

test("unknown paths, /api ones included, still get the JSON 404", async () => {
  for (const path of ["/api/nope", "/api/v1/unknown", "/nope.js", "/web/app.js"]) {
    const response = await fetch(server.url + path);
    assert.equal(response.status, 404, path);
    const body = await response.json();
    assert.equal(body.error.code, "not_found", path);
  }
  // And the API next to the UI still works.
  const health = await fetch(server.url + "/healthz");
  assert.deepEqual(await health.json(), { status: "ok" });
});
