'use strict';

// What the scripts here share: their command line, what they print, and
// keeping the client key and tokens out of it.
//
//   WX_GATEWAY_KEY=<client key> node <script> <gateway URL> <appid> [<more>...]

// parseArgs returns the gateway URL (without a trailing slash), the appid,
// the further arguments and the client key (WX_GATEWAY_KEY). When one of
// the first three is missing, or valid refuses the further arguments, it
// prints usage and exits 2.
function parseArgs(usage, valid) {
  const [gatewayURL, appid, ...more] = process.argv.slice(2);
  const key = process.env.WX_GATEWAY_KEY;
  if (!gatewayURL || !appid || !key || !valid(more)) {
    console.error('usage: WX_GATEWAY_KEY=<client key> node ' + usage);
    process.exit(2);
  }
  return { gateway: gatewayURL.replace(/\/+$/, ''), appid, more, key };
}

// redact keeps tokens, secrets and the client key out of s (SDK errors
// quote the URL they called).
function redact(s, key) {
  return String(s)
    .replace(/(access_token|secret)=[^&\s"]*/g, '$1=REDACTED')
    .split(key).join('REDACTED');
}

// printResult runs fn and prints what it returns as one JSON line with
// "ok":true; on a failure it prints {"ok":false,"error":...} and exits 1.
function printResult(key, fn) {
  fn().then((result) => {
    console.log(JSON.stringify({ ok: true, ...result }));
  }, (err) => {
    console.log(JSON.stringify({ ok: false, error: redact(err && err.message || err, key) }));
    process.exit(1);
  });
}

module.exports = { parseArgs, redact, printResult };
