// @ts-check
/**
 * @file The upgrade nudge on a server that sells a plan: its Upgrade
 * button asks the server for a Checkout Session for the plan `/api/config`
 * offers, the server creates it through (a fake of) Stripe's form-encoded
 * API, and the page goes to the Checkout URL Stripe answered.
 */

import assert from "node:assert/strict";
import http from "node:http";
import { after, before, test } from "node:test";
import { api, registerUser } from "../lib/server.js";
import { sendMessage, startStack, waitForReply } from "./helpers.js";

const API_KEY = "sk_test_browser";

/**
 * A fake Stripe: `POST /v1/checkout/sessions` (form-encoded, bearer key)
 * answers a session whose `url` is a page this server also serves.
 */
async function startFakeStripe() {
  /** @type {{ authorization: string | undefined, form: URLSearchParams }[]} */
  const sessions = [];
  const server = http.createServer((request, response) => {
    let body = "";
    request.on("data", (chunk) => (body += chunk));
    request.on("end", () => {
      if (request.method === "POST" && request.url === "/v1/checkout/sessions") {
        sessions.push({ authorization: request.headers.authorization, form: new URLSearchParams(body) });
        const id = `cs_test_${sessions.length}`;
        response.writeHead(200, { "content-type": "application/json" });
        response.end(JSON.stringify({ id, object: "checkout.session", url: `${fake.url}/pay/${id}` }));
      } else if (request.method === "GET" && request.url?.startsWith("/pay/")) {
        response.writeHead(200, { "content-type": "text/html" });
        response.end("<!doctype html><title>Fake Checkout</title><h1>Pay</h1>");
      } else {
        response.writeHead(404).end();
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  const fake = {
    url: `http://127.0.0.1:${address.port}`,
    sessions,
    close: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  };
  return fake;
}

/** @type {Awaited<ReturnType<typeof startFakeStripe>>} */
let stripe;
/** @type {Awaited<ReturnType<typeof startStack>>} */
let stack;

before(async () => {
  stripe = await startFakeStripe();
  stack = await startStack({
    serverEnv: {
      COLLOQUY_PLANS__FREE__MESSAGES_PER_DAY: "1",
      COLLOQUY_PLANS__PRO__MESSAGES_PER_DAY: "1000",
      COLLOQUY_BILLING__PRICES__PRO: "price_pro_monthly",
      COLLOQUY_BILLING__STRIPE_API_BASE: stripe.url,
      COLLOQUY_BILLING__SUCCESS_URL: "http://127.0.0.1/?checkout=done",
      COLLOQUY_BILLING__CANCEL_URL: "http://127.0.0.1/?checkout=cancelled",
      STRIPE_API_KEY: API_KEY,
    },
  });
});
after(async () => {
  await stack?.stop();
  await stripe?.close();
});

test("Upgrade opens Stripe Checkout for the plan the server sells", async () => {
  const token = await registerUser(stack.server.url);
  const me = await api(stack.server.url, "GET", "/api/auth/me", { token });
  const { page } = await stack.page({ token });
  await page.goto(`${stack.server.url}/`);

  stack.upstream.reply("Happy to help.");
  await sendMessage(page, "First question");
  await waitForReply(page, "Happy to help.");
  await sendMessage(page, "Second question");
  await page.locator("#upgrade-nudge").waitFor({ state: "visible" });

  await page.locator("#upgrade-nudge-upgrade").click();
  await page.waitForURL(`${stripe.url}/pay/cs_test_1`);
  assert.equal(await page.title(), "Fake Checkout");

  assert.equal(stripe.sessions.length, 1);
  const [session] = stripe.sessions;
  assert.equal(session.authorization, `Bearer ${API_KEY}`);
  assert.equal(session.form.get("mode"), "subscription");
  assert.equal(session.form.get("line_items[0][price]"), "price_pro_monthly");
  assert.equal(session.form.get("metadata[plan]"), "pro");
  assert.equal(session.form.get("client_reference_id"), me.id);
});
