// Test-only: Coveo's own Push API client (@coveo/push-api-client) sets a source's status on the
// emulator, as tests/emulator/test_coveo_js_client.py asks:
//   node set_status.js PUSH_URL ORGANIZATION API_KEY SOURCE_ID STATUS...
// The client's URLs are fixed to Coveo's hosts, so its fetch is pointed at the emulator instead;
// a request to anywhere else is refused rather than sent.
'use strict';
const {PushSource} = require('@coveo/push-api-client');

const COVEO_PUSH_URL = 'https://api.cloud.coveo.com/push/v1';

function redirectFetchTo(pushUrl) {
  const realFetch = globalThis.fetch;
  globalThis.fetch = (url, init) => {
    const target = String(url);
    if (!target.startsWith(COVEO_PUSH_URL)) {
      throw new Error(`refusing to send a request outside the Push API: ${target}`);
    }
    return realFetch(pushUrl + target.slice(COVEO_PUSH_URL.length), init);
  };
}

async function main() {
  const [pushUrl, organization, apiKey, sourceId, ...statuses] = process.argv.slice(2);
  redirectFetchTo(pushUrl);
  // One attempt: the client retries only 429s, and none is expected here.
  const source = new PushSource(apiKey, organization, {maxRetries: 1});
  for (const status of statuses) {
    await source.setSourceStatus(sourceId, status);
  }
  console.log(JSON.stringify({statusesSet: statuses}));
}

main().catch(error => {
  console.error(`${error.name}: ${error.message}`);
  process.exit(1);
});
