'use strict';

// Signs a page with the unmodified co-wechat-api SDK (npm co-wechat-api@3.11.0)
// through the caddy-wechat gateway: its jsapi ticket comes from the
// gateway's ticket cache. integration/tickets_test.go runs it.
//
//   WX_GATEWAY_KEY=<client key> node jsconfig.js <gateway URL> <appid> <page URL>
//
// It prints one JSON line: the config getJsConfig made and the ticket it
// used, which the test checks against the gateway's; or {"ok":false,...}.

const API = require('co-wechat-api');

const [gatewayURL, appid, page] = process.argv.slice(2);
const key = process.env.WX_GATEWAY_KEY;
if (!gatewayURL || !appid || !page || !key) {
  console.error('usage: WX_GATEWAY_KEY=<client key> node jsconfig.js <gateway URL> <appid> <page URL>');
  process.exit(2);
}

const api = new API(appid, key);
api.setOpts({ timeout: 15000 });
api.prefix = gatewayURL.replace(/\/+$/, '') + '/cgi-bin/'; // as client.js does

(async () => {
  try {
    const config = await api.getJsConfig({ debug: false, jsApiList: ['updateAppMessageShareData'], url: page });
    const ticket = await api.getTicketToken('jsapi');
    console.log(JSON.stringify({ ok: true, config, ticket: ticket.ticket }));
  } catch (err) {
    console.log(JSON.stringify({ ok: false, error: String(err && err.message || err).split(key).join('REDACTED') }));
    process.exit(1);
  }
})();
