// Contentful's own request signing, for tests/producers/test_contentful_library.py.
//
// One JSON request a line on stdin, one JSON answer a line on stdout, in order:
//   {"op": "sign", "secret", "request": {method, path, headers, body}, "timestamp"}
//       -> {"headers": {...}}          what signRequest adds to the request
//   {"op": "verify", "secret", "request": {...}, "ttl"}
//       -> {"ok": true|false, "error"?: "..."}   verifyRequest's verdict (a throw is a refusal)
// Any other failure answers {"failure": "..."} and the process goes on.
import { createInterface } from "node:readline";
import { signRequest, verifyRequest } from "@contentful/node-apps-toolkit/requests";

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });

function answer(message) {
  switch (message.op) {
    case "sign":
      return { headers: signRequest(message.secret, message.request, message.timestamp) };
    case "verify":
      try {
        return { ok: verifyRequest(message.secret, message.request, message.ttl) };
      } catch (error) {
        return { ok: false, error: String(error && error.message ? error.message : error) };
      }
    default:
      return { failure: `unknown op ${JSON.stringify(message.op)}` };
  }
}

lines.on("line", (line) => {
  let reply;
  try {
    reply = answer(JSON.parse(line));
  } catch (error) {
    reply = { failure: String(error && error.stack ? error.stack : error) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
});
